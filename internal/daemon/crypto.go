package daemon

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/jobq-dev/jobq/internal/durable"
	"github.com/jobq-dev/jobq/internal/noderpc"
)

// A cluster certificate renewal ("jobq cluster renew-crypto") goes through
// three phases on every node, the master leading: stage (the new pair is
// stored as next-cert.pem/next-key.pem and accepted besides the current
// one), switch (the new pair becomes cert.pem/key.pem and is presented;
// the old certificate, kept in accept.pem, is still accepted) and finish
// (accept.pem is removed: only the new one is accepted). Between phases
// every node accepts what every other node presents.
const (
	nextCertFile   = "next-cert.pem"
	nextKeyFile    = "next-key.pem"
	acceptCertFile = "accept.pem" // PEM certificates accepted besides the current one
)

func cryptoPath(dataDir, name string) string { return filepath.Join(dataDir, "cluster", name) }

// finishInterruptedSwitch completes a switch that a crash cut between its
// two renames (key.pem already the new key, cert.pem still the old
// certificate): cert.pem takes the staged certificate.
func finishInterruptedSwitch(dataDir string) error {
	certFile, keyFile := ClusterCertPaths(dataDir)
	next := cryptoPath(dataDir, nextCertFile)
	if _, err := os.Stat(next); err != nil {
		return nil
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return nil
	}
	if _, err := tls.LoadX509KeyPair(next, keyFile); err != nil {
		return nil // not that case: the usual error follows
	}
	return renameDurable(next, certFile)
}

// loadKeyring makes the node's keyring: the current certificate, and the
// ones accepted besides it (accept.pem, and a staged next-cert.pem).
func loadKeyring(dataDir string, cert tls.Certificate) (*noderpc.Keyring, error) {
	var extra [][]byte
	for _, name := range []string{acceptCertFile, nextCertFile} {
		ders, err := readCertsPEM(cryptoPath(dataDir, name))
		if err != nil {
			return nil, err
		}
		extra = append(extra, ders...)
	}
	return noderpc.NewKeyring(cert, extra...), nil
}

// readCertsPEM reads the certificates (DER) of a PEM file; none when the
// file does not exist.
func readCertsPEM(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, blk.Bytes)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return out, nil
}

func renameDurable(from, to string) error { return durable.Rename(from, to) }

func removeDurable(path string) error { return durable.Remove(path) }

// cryptoPhase carries out one phase of a renewal on this node; each phase
// may be repeated.
func (n *nodeRT) cryptoPhase(req *noderpc.CryptoRequest) error {
	n.cryptoMu.Lock()
	defer n.cryptoMu.Unlock()
	dir := n.o.DataDir
	certFile, keyFile := ClusterCertPaths(dir)
	nextCert, nextKey := cryptoPath(dir, nextCertFile), cryptoPath(dir, nextKeyFile)
	accept := cryptoPath(dir, acceptCertFile)
	current := n.keys.Certificate()
	currentFP := noderpc.Fingerprint(current.Certificate[0])
	switch req.Phase {
	case noderpc.CryptoStage:
		pair, err := tls.X509KeyPair(req.CertPEM, req.KeyPEM)
		if err != nil {
			return &noderpc.Error{Code: noderpc.CodeBadRequest, Message: "the new certificate and key do not make a pair: " + err.Error()}
		}
		if fp := noderpc.Fingerprint(pair.Certificate[0]); fp != req.Fingerprint {
			return &noderpc.Error{Code: noderpc.CodeBadRequest, Message: fmt.Sprintf("the new certificate's fingerprint is %s, not %s", fp, req.Fingerprint)}
		}
		if currentFP == req.Fingerprint {
			return nil // switched already
		}
		if err := writeDurableMode(nextKey, req.KeyPEM, 0o600); err != nil {
			return err
		}
		if err := writeDurableMode(nextCert, req.CertPEM, 0o644); err != nil {
			return err
		}
		n.keys.Set(*current, append(n.keys.Accepted()[1:], pair.Certificate[0])...)
		n.log.Info("cluster certificate renewal: the new certificate is accepted", "fingerprint", req.Fingerprint)
	case noderpc.CryptoSwitch:
		if currentFP == req.Fingerprint {
			return nil
		}
		pair, err := tls.LoadX509KeyPair(nextCert, nextKey)
		if err != nil || noderpc.Fingerprint(pair.Certificate[0]) != req.Fingerprint {
			return &noderpc.Error{Code: noderpc.CodeRefused, Message: fmt.Sprintf("no certificate with the fingerprint %s is staged on this node", req.Fingerprint)}
		}
		old := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: current.Certificate[0]})
		if err := writeDurableMode(accept, old, 0o644); err != nil {
			return err
		}
		if err := renameDurable(nextKey, keyFile); err != nil {
			return err
		}
		if err := renameDurable(nextCert, certFile); err != nil {
			return err
		}
		n.keys.Set(pair, current.Certificate[0])
		n.dropConnections()
		n.log.Info("cluster certificate renewal: this node presents the new certificate", "fingerprint", req.Fingerprint)
	case noderpc.CryptoFinish:
		if currentFP != req.Fingerprint {
			return &noderpc.Error{Code: noderpc.CodeRefused, Message: fmt.Sprintf("this node presents the certificate %s, not %s: switch it first", currentFP, req.Fingerprint)}
		}
		if err := removeDurable(accept); err != nil {
			return err
		}
		n.keys.Set(*current)
		n.dropConnections()
		n.log.Info("cluster certificate renewal: only the new certificate is accepted", "fingerprint", req.Fingerprint)
	case noderpc.CryptoAbort:
		if currentFP == req.Fingerprint {
			return &noderpc.Error{Code: noderpc.CodeRefused, Message: "this node presents that certificate already; it cannot be forgotten"}
		}
		staged, _ := readCertsPEM(nextCert)
		if len(staged) == 0 || noderpc.Fingerprint(staged[0]) != req.Fingerprint {
			return nil
		}
		if err := removeDurable(nextCert); err != nil {
			return err
		}
		if err := removeDurable(nextKey); err != nil {
			return err
		}
		extra, err := readCertsPEM(accept)
		if err != nil {
			return err
		}
		n.keys.Set(*current, extra...)
	}
	return nil
}

// dropConnections closes the node's idle node RPC connections, so that
// the next calls shake hands with the keyring as it is now.
func (n *nodeRT) dropConnections() {
	if n.client != nil {
		n.client.Close()
	}
}

func (h rpcHandler) Crypto(ctx context.Context, req *noderpc.CryptoRequest) error {
	n := h.n
	if err := n.staleOrder(req.Master, req.Epoch, "a certificate renewal from "+req.Master); err != nil {
		return err
	}
	if c := n.config(); c.Master != req.Master && req.Epoch <= c.Epoch {
		return &noderpc.Error{Code: noderpc.CodeRefused, Message: fmt.Sprintf("refused a certificate renewal from %s: the master is %s", req.Master, c.Master)}
	}
	return n.cryptoPhase(req)
}

// renewCrypto is "jobq cluster renew-crypto" on the master: a new cluster
// certificate on every online node, through the three phases.
func (n *nodeRT) renewCrypto(ctx context.Context) (any, error) {
	if n.queue() == nil {
		return nil, n.notMaster()
	}
	n.changeMu.Lock() // no node joins meanwhile
	defer n.changeMu.Unlock()
	c := n.config()
	certPEM, keyPEM, err := newClusterCertPEM(n.self, time.Now())
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(certPEM)
	fp := noderpc.Fingerprint(blk.Bytes)
	var warnings []string
	var targets []string // online nodes other than this one, by name
	addrs := map[string]string{}
	for _, nd := range sortedNodes(c) {
		switch {
		case nd.Name == n.self:
		case !nd.Online:
			warnings = append(warnings, fmt.Sprintf("node %s is offline and keeps the old certificate: before marking it online, copy cluster/cert.pem and cluster/key.pem from this node's data directory to it (or remove it and join it again)", nd.Name))
		default:
			targets = append(targets, nd.Name)
			addrs[nd.Name] = nd.Address
		}
	}
	if len(targets) > 0 && n.client == nil {
		return nil, prereq("this node serves no node RPC (--rpc-addr) and cannot reach the other nodes")
	}
	// request is one phase's order (Master and Epoch matter to the others;
	// this node carries out its own phases directly).
	request := func(p string) *noderpc.CryptoRequest {
		req := &noderpc.CryptoRequest{Master: n.self, Epoch: c.Epoch, Phase: p, Fingerprint: fp}
		if p == noderpc.CryptoStage {
			req.CertPEM, req.KeyPEM = certPEM, keyPEM
		}
		return req
	}
	phase := func(p string) map[string]error {
		req := request(p)
		fails := map[string]error{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, name := range targets {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := n.client.Crypto(cctx, addrs[name], req); err != nil {
					mu.Lock()
					fails[name] = err
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return fails
	}
	local := func(p string) error { return n.cryptoPhase(request(p)) }
	describe := func(fails map[string]error) string {
		var parts []string
		for _, name := range append([]string{n.self}, targets...) {
			if err := fails[name]; err != nil {
				parts = append(parts, name+": "+err.Error())
			}
		}
		return strings.Join(parts, "; ")
	}

	// Stage everywhere, or nowhere.
	if err := local(noderpc.CryptoStage); err != nil {
		return nil, fmt.Errorf("cannot store the new certificate here: %w", err)
	}
	if fails := phase(noderpc.CryptoStage); len(fails) > 0 {
		phase(noderpc.CryptoAbort)
		_ = local(noderpc.CryptoAbort)
		return nil, prereq("the cluster certificate was not renewed, nothing changed: not every online node could store the new one (%s); mark nodes that are gone offline, or try again", describe(fails))
	}
	// Switch: this node first, then the others; all accept both.
	if err := local(noderpc.CryptoSwitch); err != nil {
		return nil, fmt.Errorf("cannot switch to the new certificate here: %w", err)
	}
	if fails := phase(noderpc.CryptoSwitch); len(fails) > 0 {
		return nil, prereq("the cluster certificate renewal is half done: every node accepts both certificates, but some still present the old one (%s); run 'jobq cluster renew-crypto' again once they answer", describe(fails))
	}
	// Finish: the others, then this node.
	fails := phase(noderpc.CryptoFinish)
	if err := local(noderpc.CryptoFinish); err != nil {
		fails[n.self] = err
	}
	if len(fails) > 0 {
		warnings = append(warnings, fmt.Sprintf("some nodes still accept the old certificate too (%s); run 'jobq cluster renew-crypto' again", describe(fails)))
	}
	count := len(targets) + 1
	n.log.Info("renewed the cluster certificate", "fingerprint", fp, "nodes", count)
	nodes := "nodes"
	if count == 1 {
		nodes = "node"
	}
	return map[string]any{"fingerprint": fp, "nodes": count, "warnings": nonNil(warnings),
		"message": fmt.Sprintf("The cluster certificate was renewed on %d %s; its fingerprint is %s.", count, nodes, fp)}, nil
}
