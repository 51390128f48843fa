package daemon

import (
	"crypto/tls"
	"encoding/pem"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobq-dev/jobq/internal/noderpc"
)

// TestInterruptedSwitchCompletes: a crash between the two renames of a
// switch leaves the new key with the old certificate; the next start
// puts the staged certificate in place, and the keyring then presents
// the new certificate and accepts the old one (accept.pem).
func TestInterruptedSwitchCompletes(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := ClusterCertPaths(dir)
	if err := createClusterCert(certFile, keyFile, "node1", time.Now()); err != nil {
		t.Fatal(err)
	}
	oldCert, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey, err := newClusterCertPEM("node1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The state the switch leaves after its first rename.
	for name, data := range map[string][]byte{acceptCertFile: oldCert, nextCertFile: newCert} {
		if err := os.WriteFile(cryptoPath(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(keyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		t.Fatal("the set-up is not a torn switch")
	}
	if err := finishInterruptedSwitch(dir); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("after completing: %v", err)
	}
	if _, err := os.Stat(cryptoPath(dir, nextCertFile)); err == nil {
		t.Error("next-cert.pem is still there")
	}
	keys, err := loadKeyring(dir, pair)
	if err != nil {
		t.Fatal(err)
	}
	oldBlock, _ := pem.Decode(oldCert)
	newBlock, _ := pem.Decode(newCert)
	if !keys.Accepts(oldBlock.Bytes) || !keys.Accepts(newBlock.Bytes) || string(keys.Leaf()) != string(newBlock.Bytes) {
		t.Error("the keyring does not present the new certificate and accept both")
	}
	// Nothing to do on a directory in order.
	if err := finishInterruptedSwitch(dir); err != nil {
		t.Fatal(err)
	}
	if err := finishInterruptedSwitch(filepath.Join(dir, "nothing")); err != nil {
		t.Fatal(err)
	}
}

// TestCryptoPhasesOnANode: each phase on one node, repeated and out of
// order: stage and switch may be repeated, a switch of a certificate not
// staged, a finish before the switch, an abort of the certificate in use
// and a pair that does not match its fingerprint are refused and change
// nothing.
func TestCryptoPhasesOnANode(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := ClusterCertPaths(dir)
	if err := createClusterCert(certFile, keyFile, "node1", time.Now()); err != nil {
		t.Fatal(err)
	}
	cur, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	n := &nodeRT{o: Options{DataDir: dir}, keys: noderpc.NewKeyring(cur), log: slog.New(slog.DiscardHandler)}
	certPEM, keyPEM, err := newClusterCertPEM("node1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	fp := noderpc.Fingerprint(blk.Bytes)
	phase := func(p string) error {
		req := &noderpc.CryptoRequest{Phase: p, Fingerprint: fp}
		if p == noderpc.CryptoStage {
			req.CertPEM, req.KeyPEM = certPEM, keyPEM
		}
		return n.cryptoPhase(req)
	}
	refused := func(step, p, want string) {
		t.Helper()
		var e *noderpc.Error
		if err := phase(p); !errors.As(err, &e) || !strings.Contains(e.Message, want) {
			t.Fatalf("%s: %v, want a refusal saying %q", step, err, want)
		}
	}
	refused("switch before stage", noderpc.CryptoSwitch, "is staged on this node")
	refused("finish before switch", noderpc.CryptoFinish, "switch it first")
	other, _, _ := newClusterCertPEM("node1", time.Now())
	if err := n.cryptoPhase(&noderpc.CryptoRequest{Phase: noderpc.CryptoStage, Fingerprint: fp, CertPEM: other, KeyPEM: keyPEM}); err == nil {
		t.Fatal("a certificate with another key was staged")
	}
	for range 2 {
		if err := phase(noderpc.CryptoStage); err != nil {
			t.Fatal(err)
		}
	}
	if !n.keys.Accepts(blk.Bytes) || !n.keys.Accepts(cur.Certificate[0]) || len(n.keys.Accepted()) != 2 {
		t.Fatalf("staged: accepted %d certificates", len(n.keys.Accepted()))
	}
	for range 2 {
		if err := phase(noderpc.CryptoSwitch); err != nil {
			t.Fatal(err)
		}
	}
	if string(n.keys.Leaf()) != string(blk.Bytes) || !n.keys.Accepts(cur.Certificate[0]) {
		t.Fatal("switched: not presenting the new certificate, or not accepting the old one")
	}
	refused("abort after switch", noderpc.CryptoAbort, "cannot be forgotten")
	if err := phase(noderpc.CryptoFinish); err != nil {
		t.Fatal(err)
	}
	if n.keys.Accepts(cur.Certificate[0]) {
		t.Fatal("the old certificate is still accepted after finish")
	}
	for _, f := range []string{acceptCertFile, nextCertFile, nextKeyFile} {
		if _, err := os.Stat(cryptoPath(dir, f)); err == nil {
			t.Errorf("cluster/%s left behind", f)
		}
	}
	// What a restart loads is what runs.
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || string(pair.Certificate[0]) != string(blk.Bytes) {
		t.Fatalf("on disk after finish: %v", err)
	}
}
