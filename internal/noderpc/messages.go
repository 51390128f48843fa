package noderpc

import (
	"github.com/jobq-dev/jobq/internal/cluster"
)

// OpWrite is the operation of every file in a FetchReply: the file
// Name holds Data.
const OpWrite = "write"

// Change is one queue file, its name relative to the queue directory and
// checked with ValidQueueName on the receiving node.
type Change struct {
	Op   string `json:"op"`
	Name string `json:"name"`
	Data []byte `json:"data,omitempty"`
}

// FileInfo describes one queue file in a state report.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"` // hex; empty when not asked for
}

// StateRequest asks for a node's queue state (POST /v1/state). Archive
// lists the archived files too; Hash hashes them (live files are always
// hashed).
type StateRequest struct {
	Archive     bool `json:"archive,omitempty"`
	HashArchive bool `json:"hash_archive,omitempty"`
}

// StateReply is a node's queue state: its live queue files (job-N,
// serial, drain, version) and, when asked, its archive.
type StateReply struct {
	Node    string          `json:"node"`
	Master  bool            `json:"master"` // this node runs the queue now
	Files   []FileInfo      `json:"files"`
	Archive []FileInfo      `json:"archive,omitempty"`
	Config  *cluster.Config `json:"config"`
}

// FetchRequest asks for the contents of queue files (POST /v1/fetch).
type FetchRequest struct {
	Names []string `json:"names"`
}

// FetchReply holds the files asked for; a missing file is left out.
type FetchReply struct {
	Files []Change `json:"files"` // Op is OpWrite
}

// JoinRequest is a new node's request to join (POST /v1/join). It is the
// one call made without a client certificate: the token authenticates it.
type JoinRequest struct {
	Token   string `json:"token"`
	Node    string `json:"node"`
	Address string `json:"address"` // the new node's node RPC address
	// Via is the address the new node used to reach this node; a master
	// whose own address names no host (":1821") records it.
	Via string `json:"via,omitempty"`
}

// JoinReply gives the new node what it needs: the configuration with it
// included and the cluster certificate and key (PEM).
type JoinReply struct {
	Config  *cluster.Config `json:"config"`
	CertPEM []byte          `json:"cert_pem"`
	KeyPEM  []byte          `json:"key_pem"`
	// Group names the cluster's Raft group: its members talk on the
	// stream "raft-GROUP", so that the members of another group (a
	// cluster forced anew with master-failover --no-voting) never reach
	// this one's.
	Group string `json:"group,omitempty"`
}

// CommandRequest runs a restricted command on the node (POST /v1/command).
type CommandRequest struct {
	Command string `json:"command"`
	// Epoch is the calling master's: a node that knows a newer one
	// refuses the call, and stops it if it learns of one meanwhile (0: a
	// master that does not say, from before epochs were sent).
	Epoch int64 `json:"epoch,omitempty"`
}

// CommandReply is its outcome, as OP_RESTRICTED_COMMAND reports it.
type CommandReply struct {
	Success bool   `json:"success"`
	Output  string `json:"output"`
}

// DelayRequest sleeps on the node (POST /v1/delay, OP_TEST_DELAY on_nodes).
type DelayRequest struct {
	Seconds float64 `json:"seconds"`
	Epoch   int64   `json:"epoch,omitempty"` // as CommandRequest's
}

// Crypto phases: a cluster certificate renewal, run by the master on
// every node in turn (each phase is idempotent).
const (
	CryptoStage  = "stage"  // store the new certificate and key, accept it too
	CryptoSwitch = "switch" // present the new one, still accept the old
	CryptoFinish = "finish" // accept the new one only
	CryptoAbort  = "abort"  // forget a staged certificate
)

// CryptoRequest is one phase of a cluster certificate renewal
// (POST /v1/crypto). Stage carries the new certificate and key (PEM); the
// other phases name it by Fingerprint.
type CryptoRequest struct {
	Master      string `json:"master"`
	Epoch       int64  `json:"epoch"`
	Phase       string `json:"phase"`
	Fingerprint string `json:"fingerprint"`
	CertPEM     []byte `json:"cert_pem,omitempty"`
	KeyPEM      []byte `json:"key_pem,omitempty"`
}
