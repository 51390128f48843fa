package noderpc

import (
	"github.com/jobq-dev/jobq/internal/cluster"
)

// Change kinds in a replication batch.
const (
	OpWrite  = "write"  // replace Name with Data
	OpRename = "rename" // move Name to Dst (archive); a missing Name whose Dst exists is done already
	OpRemove = "remove" // delete Name; a missing file is not an error
)

// Change is one file change, names relative to the queue directory and
// checked with ValidQueueName on the receiving node.
type Change struct {
	Op   string `json:"op"`
	Name string `json:"name"`
	Dst  string `json:"dst,omitempty"`
	Data []byte `json:"data,omitempty"`
}

// ApplyRequest carries one or more batches of queue changes from the
// master (POST /v1/apply). Normal batches must follow the replica's
// position directly (cluster.Accept): FirstSeq is the sequence number of
// the first batch in the request, LastSeq of the last; the replica applies
// them and its position becomes (Epoch, LastSeq). A Resync brings a
// replica to the master's state as of LastSeq in one or more chunks: the
// first (ResyncStart) must not be behind the replica's position
// (cluster.AcceptResync), the others must belong to the resync in
// progress, and the replica's position stays where it was until the last
// chunk (ResyncEnd) sets it to (Epoch, LastSeq) — a position never goes
// down.
type ApplyRequest struct {
	Master      string   `json:"master"`
	Epoch       int64    `json:"epoch"`
	FirstSeq    int64    `json:"first_seq"`
	LastSeq     int64    `json:"last_seq"`
	Resync      bool     `json:"resync,omitempty"`
	ResyncStart bool     `json:"resync_start,omitempty"`
	ResyncEnd   bool     `json:"resync_end,omitempty"`
	Changes     []Change `json:"changes"`
}

// ApplyReply is the replica's position after the request.
type ApplyReply struct {
	Position cluster.Position `json:"position"`
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

// StateReply is a node's queue state: its replication position, its
// voter record, its live queue files (job-N, serial, drain, version) and,
// when asked, its archive.
type StateReply struct {
	Node     string           `json:"node"`
	Position cluster.Position `json:"position"`
	Voter    cluster.Voter    `json:"voter"`
	Master   bool             `json:"master"` // this node runs the queue now
	Files    []FileInfo       `json:"files"`
	Archive  []FileInfo       `json:"archive,omitempty"`
	Config   *cluster.Config  `json:"config"`
}

// FetchRequest asks for the contents of queue files (POST /v1/fetch).
type FetchRequest struct {
	Names []string `json:"names"`
}

// FetchReply holds the files asked for; a missing file is left out.
type FetchReply struct {
	Files []Change `json:"files"` // Op is OpWrite
}

// VoteRequest asks for a vote in the election of epoch (POST /v1/vote).
type VoteRequest struct {
	Epoch     int64  `json:"epoch"`
	Candidate string `json:"candidate"`
}

// ConfigRequest pushes a cluster configuration (POST /v1/config); the
// node keeps it when it is newer than its own (cluster.Config.Newer) and
// its epoch is not below the node's voter epoch.
type ConfigRequest struct {
	Config *cluster.Config `json:"config"`
}

// ConfigReply is the node's configuration after the request.
type ConfigReply struct {
	Config *cluster.Config `json:"config"`
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

// PurgeRequest asks a node that is no longer a master candidate to delete
// its copy of the queue (POST /v1/purge): the live job files, the serial,
// the drain flag and the archive. Only the master of the node's newest
// epoch may ask.
type PurgeRequest struct {
	Master string `json:"master"`
	Epoch  int64  `json:"epoch"`
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
