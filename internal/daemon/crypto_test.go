package daemon

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
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
