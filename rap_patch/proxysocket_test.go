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

// Tests of the swapped proxysocket.go: the balancer hears ConnectionDone once
// a proxied TCP connection closes and once a UDP client's session times out,
// with the endpoint spelled exactly as NextEndpoint returned it.

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/proxy"
)

var psTestSvc = proxy.ServicePortName{Port: "p"}

// psTestBalancer hands out one endpoint and reports every ConnectionDone.
// The embedded LoadBalancer is nil: ProxyLoop calls only NextEndpoint.
type psTestBalancer struct {
	LoadBalancer
	endpoint string
	done     chan string
}

func (b *psTestBalancer) NextEndpoint(proxy.ServicePortName, net.Addr, bool) (string, error) {
	return b.endpoint, nil
}

func (b *psTestBalancer) ConnectionDone(svcPort proxy.ServicePortName, endpoint string) {
	b.done <- svcPort.Port + " " + endpoint
}

// psTestMapped spells a loopback backend's address as an IPv4-mapped IPv6
// address, which the API server accepts for other addresses: the dialled
// conn's RemoteAddr says 127.0.0.1, so only the carried string matches.
func psTestMapped(addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return net.JoinHostPort("::ffff:127.0.0.1", port)
}

// psTestServe runs a ProxyLoop for protocol towards the balancer.
func psTestServe(t *testing.T, protocol v1.Protocol, timeout time.Duration, lb LoadBalancer) ProxySocket {
	sock, err := newProxySocket(protocol, net.ParseIP("127.0.0.1"), 0)
	if err != nil {
		t.Fatal(err)
	}
	info := &ServiceInfo{Timeout: timeout, ActiveClients: newClientCache()}
	info.setAlive(true)
	go sock.ProxyLoop(psTestSvc, info, lb)
	t.Cleanup(func() { info.setAlive(false); sock.Close() })
	return sock
}

func psTestNoneYet(t *testing.T, lb *psTestBalancer) {
	select {
	case got := <-lb.done:
		t.Fatalf("ConnectionDone(%s) while the connection is still open", got)
	case <-time.After(50 * time.Millisecond):
	}
}

func psTestDone(t *testing.T, lb *psTestBalancer) {
	select {
	case got := <-lb.done:
		if want := "p " + lb.endpoint; got != want {
			t.Fatalf("ConnectionDone(%s), want ConnectionDone(%s)", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ConnectionDone after the connection ended")
	}
	psTestNoneYet(t, lb) // exactly once
}

func TestRAPProxySocketTCPConnectionDone(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	lb := &psTestBalancer{endpoint: psTestMapped(backend.Addr()), done: make(chan string, 4)}
	sock := psTestServe(t, v1.ProtocolTCP, time.Minute, lb)
	client, err := net.Dial("tcp", sock.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	psTestEcho(t, client)
	psTestNoneYet(t, lb)
	client.Close()
	psTestDone(t, lb)
}

func TestRAPProxySocketUDPSessionTimeoutIsConnectionDone(t *testing.T) {
	backend, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		var buf [64]byte
		for {
			n, from, err := backend.ReadFrom(buf[:])
			if err != nil {
				return
			}
			backend.WriteTo(buf[:n], from)
		}
	}()
	lb := &psTestBalancer{endpoint: psTestMapped(backend.LocalAddr()), done: make(chan string, 4)}
	sock := psTestServe(t, v1.ProtocolUDP, 300*time.Millisecond, lb)
	client, err := net.Dial("udp", sock.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	psTestEcho(t, client)
	psTestNoneYet(t, lb) // well inside the 300 ms session
	psTestDone(t, lb)
}

func psTestEcho(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(c, "ping"); err != nil {
		t.Fatal(err)
	}
	var buf [4]byte
	if _, err := io.ReadFull(c, buf[:]); err != nil || string(buf[:]) != "ping" {
		t.Fatalf("echo through the proxy: %q, %v", buf, err)
	}
}
