// Package testcert makes cluster certificates for tests, as
// internal/daemon's certs.go makes the real one: a self-signed, CA-style
// ECDSA P-256 certificate for server and client authentication, valid for
// localhost and the loopback addresses.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"
)

// LoopbackAddr is "IP:0" for a random address of 127.0.0.0/8 (not
// 127.0.0.1): a test node that restarts on the port it had keeps it,
// whatever other tests running at the same time bind or connect from on
// 127.0.0.1.
func LoopbackAddr() string {
	return fmt.Sprintf("127.%d.%d.%d:0", 1+mrand.IntN(254), mrand.IntN(256), 1+mrand.IntN(254))
}

// Listen listens on addr (HOST:PORT; port 0 for any). A test node that
// restarts listens on the address it had, whose port may still be held
// for a moment by the connections of its former run: Listen tries again
// for up to 10 seconds, then fails the test.
func Listen(t testing.TB, addr string) net.Listener {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot listen on %s for 10s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond) // the port frees itself; nothing to wait on
	}
}

// New returns a new certificate whose common name is name.
func New(t testing.TB, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"jobq cluster"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
