/*
Copyright 2026 The RAP toolkit authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package userspace

// Tests of rap_config.go: the environment, a bad value disabling RAP, and
// the Go settings against the project's one configuration table,
// rap/schemas/rap-config.json.

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

func TestRAPDisabledByBadConfigIsRoundRobin(t *testing.T) {
	env := map[string]string{"RAP_CPU_THRESHOLD": "1.5", "RAP_NODE_NAME": "node-a"}
	rb := newRAPFromEnv(func(k string) string { return env[k] })
	if rb.enabled {
		t.Fatal("RAP enabled with RAP_CPU_THRESHOLD=1.5")
	}
	rapTestNoShuffle(t)
	lb := newLoadBalancer(rb)
	lb.OnEndpointsAdd(rapTestEndpoints(rapTestEPs...))
	rb.setSnapshot(rapTestSnapshot(rb.now(), nil, nil))
	rapTestExpect(t, lb, "10.0.1.1:80", "10.0.2.1:80", "10.0.3.1:80")
}

func TestRAPConfigFromEnv(t *testing.T) {
	get := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	c, err := rapConfigFromEnv(get(nil))
	if err != nil || c != defaultRAPConfig() {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_W_NET": "0", "RAP_MEM_THRESHOLD": "1"}))
	if err != nil || c.periodS != 2 || c.staleAfterS != 6 || c.wNet != 0 || c.memThreshold != 1 {
		t.Fatalf("overrides: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_PERIOD_S": "2", "RAP_STALE_AFTER_S": "30"}))
	if err != nil || c.staleAfterS != 30 {
		t.Fatalf("stale_after: %+v, %v", c, err)
	}
	c, err = rapConfigFromEnv(get(map[string]string{"RAP_MODE": " classic ", "RAP_HYSTERESIS": "0",
		"RAP_RTT_PER_CONN_MS": "2.5", "RAP_EJECT_S": "30"}))
	if err != nil || c.mode != rapModeClassic || c.hysteresis != 0 || c.rttPerConnMS != 2.5 || c.ejectS != 30 {
		t.Fatalf("adaptive settings: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"RAP_PERIOD_S": "0"}, []string{"RAP_PERIOD_S", "period_s", "> 0"}},
		{map[string]string{"RAP_STALE_AFTER_S": "-1"}, []string{"RAP_STALE_AFTER_S", "> 0"}},
		{map[string]string{"RAP_CPU_THRESHOLD": "1.5"}, []string{"RAP_CPU_THRESHOLD", "cpu_threshold", "(0, 1]", "1.5"}},
		{map[string]string{"RAP_MEM_THRESHOLD": "0"}, []string{"RAP_MEM_THRESHOLD", "(0, 1]"}},
		{map[string]string{"RAP_W_MEM": "-0.1"}, []string{"RAP_W_MEM", "w_mem", ">= 0"}},
		{map[string]string{"RAP_W_CPU": "0", "RAP_W_MEM": "0", "RAP_W_NET": "0"}, []string{"w_cpu + w_mem + w_net", "> 0"}},
		{map[string]string{"RAP_W_CPU": "lots"}, []string{"RAP_W_CPU", "a number", "lots"}},
		{map[string]string{"RAP_W_NET": "NaN"}, []string{"RAP_W_NET", "a number"}},
		{map[string]string{"RAP_PERIOD_S": "+Inf"}, []string{"RAP_PERIOD_S"}},
		{map[string]string{"RAP_MODE": "fast"}, []string{"RAP_MODE", "mode", "one of adaptive, classic", `"fast"`}},
		{map[string]string{"RAP_MODE": "Classic"}, []string{"RAP_MODE", "adaptive, classic"}},
		{map[string]string{"RAP_HYSTERESIS": "1"}, []string{"RAP_HYSTERESIS", "hysteresis", "[0, 1)"}},
		{map[string]string{"RAP_HYSTERESIS": "-0.1"}, []string{"RAP_HYSTERESIS", "[0, 1)"}},
		{map[string]string{"RAP_RTT_PER_CONN_MS": "0"}, []string{"RAP_RTT_PER_CONN_MS", "rtt_per_conn_ms", "> 0"}},
		{map[string]string{"RAP_EJECT_S": "-2"}, []string{"RAP_EJECT_S", "eject_s", "> 0"}},
		{map[string]string{"RAP_EJECT_S": "soon"}, []string{"RAP_EJECT_S", "a number"}},
	} {
		_, err := rapConfigFromEnv(get(tc.env))
		if err == nil {
			t.Errorf("%v: accepted", tc.env)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.env, err, w)
			}
		}
	}
}

// rapTable is the part of rap/schemas/rap-config.json this test reads.
type rapTable struct {
	Fields []struct {
		Name            string        `json:"name"`
		Env             string        `json:"env"`
		Type            string        `json:"type"` // "number", "integer" or "string"
		Default         interface{}   `json:"default"`
		Choices         []string      `json:"choices"` // a string's allowed values
		DefaultFactorOf []interface{} `json:"default_factor_of"`
		Min             *float64      `json:"min"`
		MinOpen         bool          `json:"min_open"`
		Max             *float64      `json:"max"`
		MaxOpen         bool          `json:"max_open"`
	} `json:"fields"`
	Constraints []struct {
		Kind   string   `json:"kind"`
		Fields []string `json:"fields"`
	} `json:"constraints"`
}

func readRAPTable(t *testing.T) *rapTable {
	t.Helper()
	repo := os.Getenv("RAP_REPO")
	if repo == "" {
		t.Fatal("RAP_REPO is not set: set it to the repo's root, whose rap/schemas/rap-config.json is the table this test checks rap_config.go against (invoke test-proxy sets it)")
	}
	path := filepath.Join(repo, "rap", "schemas", "rap-config.json")
	var table rapTable
	rapReadJSON(t, path, "the configuration table", &table)
	if len(table.Fields) == 0 {
		t.Fatalf("%s: no fields", path)
	}
	return &table
}

// rapGoFields: every Go setting by the table's field name, with its
// environment variable and its value in cfg or ms (the monitor's settings).
func rapGoFields(cfg rapConfig, ms rapMonitorSettings) map[string]rapGoField {
	out := map[string]rapGoField{
		"rtt_port":   {env: rttPortEnv, value: float64(ms.rttPort)},
		"monitor":    {env: monitorEnv, str: ms.kind, choices: rapMonitors},
		"rtt_probes": {env: rttProbesEnv, value: float64(ms.rttProbes)},
		"view_nodes": {env: viewNodesEnv, value: float64(ms.viewNodes)},
	}
	for _, s := range cfg.settings() {
		if s.isChoice() {
			out[s.field] = rapGoField{env: s.env, str: *s.str, choices: s.choices}
		} else {
			out[s.field] = rapGoField{env: s.env, value: *s.dst}
		}
	}
	return out
}

type rapGoField struct {
	env     string
	value   float64  // a number's
	str     string   // a choice's
	choices []string // nil for a number
}

// matches: whether the Go value is the table's (a JSON number or string).
func (g rapGoField) matches(tableValue interface{}) bool {
	switch v := tableValue.(type) {
	case string:
		return g.choices != nil && g.str == v
	case float64:
		return g.choices == nil && g.value == v
	}
	return false
}

func (g rapGoField) String() string {
	if g.choices != nil {
		return strconv.Quote(g.str)
	}
	return strconv.FormatFloat(g.value, 'g', -1, 64)
}

// rapParseEnv reads env as kube-proxy would: the decision settings, then the
// monitor's.
func rapParseEnv(env map[string]string) (rapConfig, rapMonitorSettings, error) {
	get := func(k string) string { return env[k] }
	cfg, err := rapConfigFromEnv(get)
	if err != nil {
		return cfg, rapMonitorSettings{}, err
	}
	ms, err := rapMonitorSettingsFromEnv(get)
	return cfg, ms, err
}

// rapFormat writes v as an environment variable would hold it.
func rapFormat(v float64, integer bool) string {
	if integer {
		return strconv.Itoa(int(v))
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func TestRAPConfigTable(t *testing.T) {
	table := readRAPTable(t)
	goDefaults := rapGoFields(defaultRAPConfig(), defaultRAPMonitorSettings())

	t.Run("fields and environment names", func(t *testing.T) {
		seen := map[string]bool{}
		for _, f := range table.Fields {
			seen[f.Name] = true
			g, ok := goDefaults[f.Name]
			if !ok {
				t.Errorf("table field %s (%s) has no Go setting in rap_config.go", f.Name, f.Env)
			} else if g.env != f.Env {
				t.Errorf("%s: Go reads %s, the table says %s", f.Name, g.env, f.Env)
			}
		}
		for name, g := range goDefaults {
			if !seen[name] {
				t.Errorf("Go setting %s (%s) is not in rap/schemas/rap-config.json", name, g.env)
			}
		}
	})

	t.Run("defaults", func(t *testing.T) {
		parsed, ms, err := rapParseEnv(nil)
		if err != nil {
			t.Fatalf("empty environment rejected: %v", err)
		}
		fromEnv := rapGoFields(parsed, ms)
		for _, f := range table.Fields {
			if f.Default == nil {
				continue
			}
			if g := goDefaults[f.Name]; !g.matches(f.Default) {
				t.Errorf("%s: Go default %v, the table says %#v", f.Name, g, f.Default)
			}
			if got := fromEnv[f.Name]; !got.matches(f.Default) {
				t.Errorf("%s unset: read as %v, the table's default is %#v", f.Env, got, f.Default)
			}
		}
	})

	t.Run("derived defaults", func(t *testing.T) {
		for _, f := range table.Fields {
			if f.DefaultFactorOf == nil {
				continue
			}
			base, _ := f.DefaultFactorOf[0].(string)
			factor, _ := f.DefaultFactorOf[1].(float64)
			if f.Default != nil || base == "" || factor == 0 {
				t.Fatalf("%s: default_factor_of %v: want [field, factor] and a null default", f.Name, f.DefaultFactorOf)
			}
			baseEnv := goDefaults[base].env
			if got, want := goDefaults[f.Name].value, factor*goDefaults[base].value; got != want {
				t.Errorf("%s: Go default %v, the table says %v x %s = %v", f.Name, got, factor, base, want)
			}
			cfg, ms, err := rapParseEnv(map[string]string{baseEnv: "2"})
			if got := rapGoFields(cfg, ms)[f.Name].value; err != nil || got != factor*2 {
				t.Errorf("%s=2: %s read as %v (err %v), the table says %v x 2", baseEnv, f.Env, got, err, factor)
			}
		}
	})

	t.Run("choices", func(t *testing.T) {
		for _, f := range table.Fields {
			g := goDefaults[f.Name]
			if (f.Type == "string") != (g.choices != nil) {
				t.Errorf("%s: the table's type is %q, Go reads it as a choice: %v", f.Name, f.Type, g.choices != nil)
				continue
			}
			if f.Type != "string" {
				continue
			}
			if !reflect.DeepEqual(g.choices, f.Choices) {
				t.Errorf("%s: Go allows %q, the table %q (in this order)", f.Name, g.choices, f.Choices)
			}
			for _, c := range f.Choices {
				cfg, ms, err := rapParseEnv(map[string]string{f.Env: c})
				if got := rapGoFields(cfg, ms)[f.Name]; err != nil || got.str != c {
					t.Errorf("%s=%s: read as %v, err %v", f.Env, c, got, err)
				}
			}
			for _, bad := range []string{"no-such-" + f.Name, strings.ToUpper(f.Choices[0]), "1"} {
				_, _, err := rapParseEnv(map[string]string{f.Env: bad})
				if err == nil {
					t.Errorf("%s=%s: accepted, the table allows only %q", f.Env, bad, f.Choices)
					continue
				}
				for _, want := range append([]string{f.Env, bad}, f.Choices...) {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s=%s: error %q does not mention %q", f.Env, bad, err, want)
					}
				}
			}
		}
	})

	t.Run("ranges", func(t *testing.T) {
		for _, f := range table.Fields {
			if f.Type == "string" {
				continue // "choices" checks it
			}
			for _, c := range rapRangeCases(f.Type == "integer", f.Min, f.MinOpen, f.Max, f.MaxOpen) {
				raw := rapFormat(c.value, f.Type == "integer")
				cfg, ms, err := rapParseEnv(map[string]string{f.Env: raw})
				switch {
				case c.accept && err != nil:
					t.Errorf("%s=%s (%s): rejected, the table allows it: %v", f.Env, raw, c.what, err)
				case c.accept && rapGoFields(cfg, ms)[f.Name].value != c.value:
					t.Errorf("%s=%s (%s): read as %v", f.Env, raw, c.what, rapGoFields(cfg, ms)[f.Name].value)
				case !c.accept && err == nil:
					t.Errorf("%s=%s (%s): accepted, the table does not allow it", f.Env, raw, c.what)
				case !c.accept && !strings.Contains(err.Error(), f.Env):
					t.Errorf("%s=%s (%s): error %q does not name the variable", f.Env, raw, c.what, err)
				case !c.accept && !strings.Contains(err.Error(), rapRangeText(f.Min, f.MinOpen, f.Max, f.MaxOpen)):
					t.Errorf("%s=%s (%s): error %q does not state the table's range %s", f.Env, raw, c.what, err,
						rapRangeText(f.Min, f.MinOpen, f.Max, f.MaxOpen))
				}
			}
		}
	})

	t.Run("constraints", func(t *testing.T) {
		envOf := map[string]string{}
		for _, f := range table.Fields {
			envOf[f.Name] = f.Env
		}
		for _, c := range table.Constraints {
			if c.Kind != "sum_positive" {
				t.Errorf("constraint %q over %v: this test does not know the kind; check it and add it here", c.Kind, c.Fields)
				continue
			}
			zero := map[string]string{}
			for _, name := range c.Fields {
				zero[envOf[name]] = "0"
			}
			if _, _, err := rapParseEnv(zero); err == nil {
				t.Errorf("%v all 0: accepted, the table requires a positive sum", c.Fields)
			} else {
				for _, name := range c.Fields {
					if !strings.Contains(err.Error(), envOf[name]) {
						t.Errorf("%v all 0: error %q does not name %s", c.Fields, err, envOf[name])
					}
				}
			}
			for _, name := range c.Fields {
				one := map[string]string{}
				for k, v := range zero {
					one[k] = v
				}
				one[envOf[name]] = "1e-06"
				if _, _, err := rapParseEnv(one); err != nil {
					t.Errorf("only %s > 0: rejected, the sum is positive: %v", name, err)
				}
			}
		}
	})

	t.Run("every tuning variable read is in the table", func(t *testing.T) {
		read := map[string]bool{}
		record := func(k string) string { read[k] = true; return "" }
		rapConfigFromEnv(record)
		rapMonitorSettingsFromEnv(record)
		inTable := map[string]bool{}
		for _, f := range table.Fields {
			inTable[f.Env] = true
			if !read[f.Env] {
				t.Errorf("%s is in the table but rap_config.go never reads it", f.Env)
			}
		}
		for k := range read {
			if !inTable[k] {
				t.Errorf("rap_config.go reads %s for tuning, but it is not in rap/schemas/rap-config.json", k)
			}
		}
		rapCheckSourcesEnv(t, inTable)
	})
}

// rapRangeCase is one value just inside or at/just outside a range's end.
type rapRangeCase struct {
	what   string
	value  float64
	accept bool
}

// rapRangeCases: for each end, a value just inside is accepted and the end
// itself (open) or a value just beyond it (closed) is rejected; an end the
// table leaves out is tried with a far value, which must be accepted.
func rapRangeCases(integer bool, min *float64, minOpen bool, max *float64, maxOpen bool) []rapRangeCase {
	step := func(v float64) float64 {
		if integer {
			return 1
		}
		return 1e-6 * math.Max(1, math.Abs(v))
	}
	var out []rapRangeCase
	if min == nil {
		out = append(out, rapRangeCase{"no lower bound", -1e9, true})
	} else if minOpen {
		out = append(out, rapRangeCase{"open min, just inside", *min + step(*min), true},
			rapRangeCase{"open min itself", *min, false})
	} else {
		out = append(out, rapRangeCase{"closed min itself", *min, true},
			rapRangeCase{"closed min, just outside", *min - step(*min), false})
	}
	if max == nil {
		out = append(out, rapRangeCase{"no upper bound", 1e9, true})
	} else if maxOpen {
		out = append(out, rapRangeCase{"open max, just inside", *max - step(*max), true},
			rapRangeCase{"open max itself", *max, false})
	} else {
		out = append(out, rapRangeCase{"closed max itself", *max, true},
			rapRangeCase{"closed max, just outside", *max + step(*max), false})
	}
	return out
}

// rapRangeText: the range as rap_config.go's errors state it: "> 0",
// ">= 0", "(0, 1]", "[1, 65535]".
func rapRangeText(min *float64, minOpen bool, max *float64, maxOpen bool) string {
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	switch {
	case min != nil && max != nil:
		lo, hi := "[", "]"
		if minOpen {
			lo = "("
		}
		if maxOpen {
			hi = ")"
		}
		return lo + num(*min) + ", " + num(*max) + hi
	case min != nil && minOpen:
		return "> " + num(*min)
	case min != nil:
		return ">= " + num(*min)
	case max != nil && maxOpen:
		return "< " + num(*max)
	case max != nil:
		return "<= " + num(*max)
	}
	return ""
}

// rapNotTuning: variables the patch reads that are not settings of the
// table: who this node is and how the monitor reaches the API server.
var rapNotTuning = map[string]bool{"RAP_NODE_NAME": true, "RAP_KUBECONFIG": true, "RAP_ENABLE_MONITOR": true}

// rapCheckSourcesEnv: every RAP_* name quoted in the patch's non-test Go files
// is a table variable or one of rapNotTuning, and rap_config.go's opening
// comment documents every table variable. The files are those of
// $RAP_GO_SOURCE's directory when set (the tree under test), else the repo's
// rap_patch.
func rapCheckSourcesEnv(t *testing.T, inTable map[string]bool) {
	t.Helper()
	dir := filepath.Join(os.Getenv("RAP_REPO"), "rap_patch")
	if src := os.Getenv("RAP_GO_SOURCE"); src != "" {
		dir = filepath.Dir(src)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	quoted := regexp.MustCompile(`"(RAP_[A-Z0-9_]+)"`)
	var configText string
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(path) == "rap_config.go" {
			configText = string(raw)
		}
		for _, m := range quoted.FindAllStringSubmatch(string(raw), -1) {
			if !inTable[m[1]] && !rapNotTuning[m[1]] {
				t.Errorf("%s reads %s: add it to rap/schemas/rap-config.json (a setting) or to rapNotTuning", filepath.Base(path), m[1])
			}
		}
	}
	if configText == "" {
		t.Fatalf("%s: no rap_config.go", dir)
	}
	var names []string
	for env := range inTable {
		names = append(names, env)
	}
	sort.Strings(names)
	header := configText[:strings.Index(configText, "\npackage ")]
	for _, env := range names {
		if !regexp.MustCompile(`\b` + env + `\b`).MatchString(header) {
			t.Errorf("rap_config.go's opening comment does not document %s", env)
		}
	}
}
