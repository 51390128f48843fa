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
		`{"names":["job-1","archive/0/job-3","serial"]}`,
		`{"names":["..","job-01"]}`,
		`{"names":["../../etc/passwd"]}`,
		`{"names":["/queue/job-1","archive/1/job-1"]}`,
		`{"names":["job-1",""]}`,
		`{"archive":true,"hash_archive":true}`,
		`{"master":"node1","epoch":2,"phase":"stage","fingerprint":"00","cert_pem":"e30=","key_pem":"e30="}`,
		`{"master":"node1","epoch":2,"phase":"finish","fingerprint":"abababababababababababababababababababababababababababababababab"}`,
		`{"token":"jq1.x.y","node":"n2","address":"127.0.0.2:1811"}`,
		`{"command":"hello","epoch":3}`,
		`{"seconds":1e-9}`,
		`[]`, `null`, `{"names":null}`, `{"names":[{}]}`,
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
		if r, ok := h.lastRequest("fetch").(*FetchRequest); ok {
			for _, n := range r.Names {
				if ValidQueueName(n) != nil {
					t.Fatalf("fetch reached the handler with %q", n)
				}
			}
		}
	})
}
