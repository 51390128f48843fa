package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobq-dev/jobq/internal/noderpc"
	"github.com/jobq-dev/jobq/internal/testbin"
)

func clusterPair(t *testing.T, n *cnode) (tls.Certificate, []byte) {
	t.Helper()
	certFile := filepath.Join(n.dir, "cluster", "cert.pem")
	pair, err := tls.LoadX509KeyPair(certFile, filepath.Join(n.dir, "cluster", "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return pair, pemBytes
}

// rapiCert is the certificate RAPI presents at addr.
func rapiCert(t *testing.T, addr string) []byte {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Raw
}

// TestRenewCrypto: "jobq cluster renew-crypto" gives every node a new
// cluster certificate while the cluster runs: the nodes go on
// replicating, a node with the old certificate is refused, RAPI presents
// the new one, a node restarted keeps it, and a new token joins a node.
func TestRenewCrypto(t *testing.T) {
	rapiAddr := testbin.FreePort(t, "127.0.0.1")
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	// Restart the master with RAPI on.
	n1.d.Stop()
	n1.start(t, "--rapi-addr", rapiAddr)
	makeMaster(t, n1, n1, n2, n3)
	waitInSync(t, n1)
	submitAndFinish(t, n1.client(t), 3)
	oldPair, oldPEM := clusterPair(t, n1)
	if !bytes.Equal(rapiCert(t, rapiAddr), oldPair.Certificate[0]) {
		t.Fatal("RAPI does not present the cluster certificate")
	}

	// Submissions go on during the renewal, and none fails.
	c1 := n1.client(t)
	stop := make(chan struct{})
	type result struct {
		ok   int
		errs []error
	}
	done := make(chan result)
	go func() {
		var res result
		for {
			select {
			case <-stop:
				done <- res
				return
			default:
			}
			if _, err := c1.SubmitJob(context.Background(), delay(0)); err != nil {
				res.errs = append(res.errs, err)
			} else {
				res.ok++
			}
		}
	}()
	r := n1.jobq(t, "cluster", "renew-crypto")
	close(stop)
	during := <-done
	if r.Code != 0 || !strings.Contains(r.Stdout, "renewed on 3 nodes") {
		t.Fatalf("renew-crypto: %+v", r)
	}
	t.Logf("%d submissions during the renewal", during.ok)
	if len(during.errs) > 0 {
		t.Errorf("%d submissions failed during the renewal, the first: %v", len(during.errs), during.errs[0])
	}
	newPair, newPEM := clusterPair(t, n1)
	if bytes.Equal(newPEM, oldPEM) {
		t.Fatal("cert.pem did not change")
	}
	if !strings.Contains(r.Stdout, noderpc.Fingerprint(newPair.Certificate[0])) {
		t.Errorf("the message does not give the new fingerprint: %s", r.Stdout)
	}
	for _, n := range nodes {
		if _, p := clusterPair(t, n); !bytes.Equal(p, newPEM) {
			t.Errorf("%s has another certificate", n.name)
		}
		for _, f := range []string{"accept.pem", "next-cert.pem", "next-key.pem"} {
			if _, err := os.Stat(filepath.Join(n.dir, "cluster", f)); err == nil {
				t.Errorf("%s still has cluster/%s", n.name, f)
			}
		}
	}
	if !bytes.Equal(rapiCert(t, rapiAddr), newPair.Certificate[0]) {
		t.Error("RAPI still presents the old certificate")
	}
	// Replication goes on, over new connections.
	submitAndFinish(t, n1.client(t), 3)
	waitInSync(t, n1)
	sameFiles(t, n1, n2, n3)
	// The old certificate opens no door.
	ctx := context.Background()
	old := noderpc.NewClient(oldPair)
	defer old.Close()
	if _, err := old.State(ctx, n2.addr, &noderpc.StateRequest{}); err == nil {
		t.Error("node2 accepted the old certificate")
	}
	cur := noderpc.NewClient(newPair)
	defer cur.Close()
	if _, err := cur.State(ctx, n2.addr, &noderpc.StateRequest{}); err != nil {
		t.Errorf("node2 with the new certificate: %v", err)
	}
	// A restarted node keeps the new certificate and its place.
	n2.d.Stop()
	n2.start(t)
	submitAndFinish(t, n1.client(t), 2)
	waitInSync(t, n1)
	// A token made now joins a node.
	tok := strings.TrimSpace(n1.jobq(t, "cluster", "join-token").Stdout)
	if !strings.HasSuffix(tok, noderpc.Fingerprint(newPair.Certificate[0])) {
		t.Fatalf("the token does not pin the new certificate: %s", tok)
	}
	n4 := &cnode{name: "node4", addr: testbin.FreePort(t, "127.0.0.4"), dir: filepath.Join(t.TempDir(), "n4")}
	n4.start(t, "--join", n1.addr, "--token", tok)
	waitInSync(t, n1)
	sameFiles(t, n1, n4)
}

// TestRenewCryptoRefusedWithANodeDown: a node that is down but online in
// the configuration cannot store the new certificate: nothing changes
// anywhere, and the cluster goes on with the old one.
func TestRenewCryptoRefusedWithANodeDown(t *testing.T) {
	nodes := startCluster(t, 3)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	_, oldPEM := clusterPair(t, n1)
	n3.d.Kill()
	r := n1.jobq(t, "cluster", "renew-crypto")
	if r.Code == 0 || !strings.Contains(r.Stderr, "was not renewed, nothing changed") || !strings.Contains(r.Stderr, "node3") {
		t.Fatalf("renew-crypto with node3 down: %+v", r)
	}
	for _, n := range []*cnode{n1, n2} {
		if _, p := clusterPair(t, n); !bytes.Equal(p, oldPEM) {
			t.Errorf("%s changed its certificate", n.name)
		}
		if _, err := os.Stat(filepath.Join(n.dir, "cluster", "next-cert.pem")); err == nil {
			t.Errorf("%s kept the staged certificate", n.name)
		}
	}
	n3.start(t)
	submitAndFinish(t, n1.client(t), 2)
	waitInSync(t, n1)
	// Marked offline, it is left out with a warning, and the others renew.
	if r := n1.jobq(t, "node", "modify", "node3", "--offline", "yes"); r.Code != 0 {
		t.Fatalf("offline: %+v", r)
	}
	r = n1.jobq(t, "cluster", "renew-crypto")
	if r.Code != 0 || !strings.Contains(r.Stdout, "renewed on 2 nodes") || !strings.Contains(r.Stderr, "node node3 is offline and keeps the old certificate") {
		t.Fatalf("renew-crypto with node3 offline: %+v", r)
	}
	submitAndFinish(t, n1.client(t), 2)
	waitInSync(t, n1)
	sameFiles(t, n1, n2)
}
