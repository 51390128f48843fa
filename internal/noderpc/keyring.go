package noderpc

import (
	"bytes"
	"crypto/tls"
	"sync"
)

// Keyring is the cluster certificate a node presents and the cluster
// certificates it accepts from other nodes: its own, and during a
// certificate renewal the one before or after it. A Server and a Client
// made from the same Keyring follow its changes at the next handshake.
type Keyring struct {
	mu     sync.RWMutex
	cert   tls.Certificate
	accept [][]byte // DER, cert's leaf first
}

// NewKeyring returns a keyring presenting cert and accepting it and the
// extra certificates (DER).
func NewKeyring(cert tls.Certificate, extra ...[]byte) *Keyring {
	k := &Keyring{}
	k.Set(cert, extra...)
	return k
}

// Set makes the keyring present cert and accept it and extra (DER).
func (k *Keyring) Set(cert tls.Certificate, extra ...[]byte) {
	var accept [][]byte
	if len(cert.Certificate) > 0 {
		accept = append(accept, cert.Certificate[0])
	}
	for _, e := range extra {
		if len(e) > 0 && !containsDER(accept, e) {
			accept = append(accept, e)
		}
	}
	k.mu.Lock()
	k.cert, k.accept = cert, accept
	k.mu.Unlock()
}

// Certificate is the certificate presented.
func (k *Keyring) Certificate() *tls.Certificate {
	k.mu.RLock()
	defer k.mu.RUnlock()
	c := k.cert
	return &c
}

// Leaf is the DER of the certificate presented (nil if none).
func (k *Keyring) Leaf() []byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if len(k.cert.Certificate) == 0 {
		return nil
	}
	return k.cert.Certificate[0]
}

// Accepted lists the accepted certificates (DER), the presented one first.
func (k *Keyring) Accepted() [][]byte {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([][]byte(nil), k.accept...)
}

// Accepts reports whether the certificate der is a cluster certificate.
func (k *Keyring) Accepts(der []byte) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return containsDER(k.accept, der)
}

func containsDER(list [][]byte, der []byte) bool {
	for _, d := range list {
		if bytes.Equal(d, der) {
			return true
		}
	}
	return false
}
