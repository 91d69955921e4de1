"""Fast tests of rap.build.openapi: which packages openapi-gen reads, and go's JSON stream.

Nothing here runs go build or downloads anything.
"""

from __future__ import annotations

from rap.build import openapi


def test_openapi_packages_follow_the_makefile_rules(tmp_path):
    def go(rel, text):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    tagged = "// +k8s:openapi-gen=true\npackage v1\n"
    go("apis/v1/doc.go", tagged)
    go("apis/v2/types.go", "package v2\n\n// +k8s:openapi-gen=false\n")  # tag in column 0 of a comment
    go("apis/untagged/x.go", "package untagged\n")
    go("apis/mention/x.go", "package mention // talks about +k8s:openapi-gen= without a tag line\n")
    go("_output/v1/doc.go", tagged)
    go(".hidden/v1/doc.go", tagged)
    go("vendor/k8s.io/x/doc.go", tagged)
    go("staging/src/k8s.io/api/doc.go", tagged)
    got = openapi.openapi_packages(tmp_path, "k8s.io/demo")
    assert sorted(got) == ["k8s.io/demo/apis/v1", "k8s.io/demo/apis/v2"]

def test_go_json_stream_reads_concatenated_objects():
    assert openapi._json_stream('{\n "Path": "a"\n}\n{"Path": "b"}\n') == [{"Path": "a"}, {"Path": "b"}]
