package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/jobq-dev/jobq/internal/durable"
)

// The cluster certificate: one self-signed ECDSA P-256 certificate that
// is its own CA, created on a node's first start and kept under
// DATA_DIR/cluster/. RAPI serves with it; clients that want to verify the
// server use cert.pem as their CA file.
const (
	clusterCertFile = "cert.pem" // mode 0644
	clusterKeyFile  = "key.pem"  // mode 0600
	// clusterCertValidity is Ganeti's default certificate validity (5 years).
	clusterCertValidity = 5 * 365 * 24 * time.Hour
)

// ClusterCertPaths returns where a data directory keeps the cluster
// certificate and its private key.
func ClusterCertPaths(dataDir string) (certFile, keyFile string) {
	dir := filepath.Join(dataDir, "cluster")
	return filepath.Join(dir, clusterCertFile), filepath.Join(dir, clusterKeyFile)
}

// LoadOrCreateClusterCert returns the data directory's cluster
// certificate, creating it first if neither file exists: a self-signed,
// CA-style ECDSA P-256 certificate whose names are nodeName, localhost,
// 127.0.0.1 and ::1. The key is written first (mode 0600), then the
// certificate; a directory with only one of the two, or with files that do
// not make a pair, is an error to resolve by hand (nothing is
// overwritten).
func LoadOrCreateClusterCert(dataDir, nodeName string, log *slog.Logger) (tls.Certificate, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	certFile, keyFile := ClusterCertPaths(dataDir)
	_, certErr := os.Stat(certFile)
	_, keyErr := os.Stat(keyFile)
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		if err := createClusterCert(certFile, keyFile, nodeName, time.Now()); err != nil {
			return tls.Certificate{}, fmt.Errorf("cannot create the cluster certificate: %w", err)
		}
		log.Info("created the cluster certificate", "cert", certFile, "key", keyFile)
	case errors.Is(certErr, fs.ErrNotExist):
		return tls.Certificate{}, fmt.Errorf("the cluster key %s exists but its certificate %s does not; restore it, or remove the key to create a new pair", keyFile, certFile)
	case errors.Is(keyErr, fs.ErrNotExist):
		return tls.Certificate{}, fmt.Errorf("the cluster certificate %s exists but its key %s does not; restore it, or remove the certificate to create a new pair", certFile, keyFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cannot load the cluster certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if leaf := cert.Leaf; leaf != nil && time.Now().After(leaf.NotAfter) {
		log.Warn("the cluster certificate has expired; clients that verify it will refuse to connect", "cert", certFile, "not_after", leaf.NotAfter)
	}
	return cert, nil
}

func createClusterCert(certFile, keyFile, nodeName string, now time.Time) error {
	if err := durable.MkdirAll(filepath.Dir(certFile), 0o750); err != nil {
		return err
	}
	certPEM, keyPEM, err := newClusterCertPEM(nodeName, now)
	if err != nil {
		return err
	}
	if err := writeDurableMode(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeDurableMode(certFile, certPEM, 0o644)
}

// newClusterCertPEM makes a new self-signed cluster certificate and its
// key, in PEM.
func newClusterCertPEM(nodeName string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: nodeName, Organization: []string{"jobq cluster"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clocks a little behind
		NotAfter:              now.Add(clusterCertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if ip := net.ParseIP(nodeName); ip != nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	} else if nodeName != "" && nodeName != "localhost" {
		tmpl.DNSNames = append([]string{nodeName}, tmpl.DNSNames...)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// writeDurableMode writes a file atomically and durably with the given
// mode, set before any byte is written.
func writeDurableMode(path string, data []byte, mode os.FileMode) error {
	return durable.WriteFile(path, data, mode)
}
