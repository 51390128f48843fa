package noderpc

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
)

// FuzzServeRequest feeds arbitrary bodies to every node RPC call of a
// server, as from a peer with the cluster certificate: the server must
// answer (never panic), and a request naming a file that is not a queue
// file must never reach the handler.
func FuzzServeRequest(f *testing.F) {
	cert := newTestCert(f, "node1")
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		f.Fatal(err)
	}
	var paths []string
	for p := range endpoints {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	seeds := []string{
		`{"master":"node1","epoch":2,"first_seq":3,"last_seq":3,"changes":[{"op":"write","name":"job-1","data":"e30="}]}`,
		`{"master":"node1","epoch":2,"changes":[{"op":"rename","name":"job-1","dst":"archive/0/job-1"}]}`,
		`{"changes":[{"op":"write","name":"../../etc/passwd","data":""}]}`,
		`{"changes":[{"op":"remove","name":"/queue/job-1"}]}`,
		`{"names":["job-1","archive/0/job-3","serial"]}`,
		`{"names":["..","job-01"]}`,
		`{"epoch":3,"candidate":"node2"}`,
		`{"config":{"cluster_name":"c","master":"n1","epoch":1,"nodes":[{"name":"n1"}]}}`,
		`{"token":"jq1.x.y","node":"n2","address":"127.0.0.2:1811"}`,
		`{"command":"hello"}`,
		`{"seconds":1e-9}`,
		`[]`, `null`, `{"changes":null}`, `{"changes":[{}]}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		h := newFakeHandler()
		s := newServer(NewKeyring(cert), h, slog.New(slog.DiscardHandler))
		path := paths[int(which)%len(paths)]
		if path == "/v1/delay" {
			return // a fuzzed delay would sleep
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
		rec := httptest.NewRecorder()
		s.serveHTTP(rec, req)
		// (A recorder's Code is 200 until a handler says otherwise, so
		// it cannot tell that nothing was answered: every answer of
		// the node RPC is a JSON body.)
		if rec.Body.Len() == 0 || !json.Valid(rec.Body.Bytes()) || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: no JSON answer: %d %v %q", path, rec.Code, rec.Header(), rec.Body)
		}
		if r, ok := h.lastRequest("apply").(*ApplyRequest); ok {
			for _, c := range r.Changes {
				if ValidQueueName(c.Name) != nil || (c.Dst != "" && ValidQueueName(c.Dst) != nil) {
					t.Fatalf("apply reached the handler with %q -> %q", c.Name, c.Dst)
				}
			}
		}
		if r, ok := h.lastRequest("fetch").(*FetchRequest); ok {
			for _, n := range r.Names {
				if ValidQueueName(n) != nil {
					t.Fatalf("fetch reached the handler with %q", n)
				}
			}
		}
	})
}
