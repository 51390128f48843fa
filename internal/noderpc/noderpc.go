// Package noderpc is jobq's node-to-node RPC (SPEC §8): JSON over HTTPS
// with mutual TLS on the cluster certificate. Every node serves it; the
// consensus engine's messages travel over its streams, nodes catch up by
// fetching queue files through it, and opcodes run restricted commands
// through it.
//
// Both ends present the cluster certificate and accept exactly that
// certificate from the other end (pinned by its bytes; during a
// certificate renewal a [Keyring] accepts the old and the new one): no
// client certificate, a foreign certificate or plain HTTP are refused. The one
// exception is /v1/join, which a new node calls before it has the
// certificate: it is authenticated by its token, and the new node pins the
// server's certificate by the fingerprint the token carries.
//
// # Calls
//
// Each [Handler] method is one POST endpoint taking its request as a JSON
// body and answering its reply as JSON:
//
//	POST /v1/state    StateRequest   → StateReply
//	POST /v1/fetch    FetchRequest   → FetchReply
//	POST /v1/join     JoinRequest    → JoinReply (no client certificate needed)
//	POST /v1/command  CommandRequest → CommandReply
//	POST /v1/delay    DelayRequest   → {}
//	POST /v1/crypto   CryptoRequest  → {}
//
// Besides the calls, GET /v1/stream/NAME with "Upgrade: jobq-stream"
// turns the connection into a long-lived byte stream for whoever listens
// on Server.StreamListener(NAME) (the consensus engine's messages), opened
// with Client.DialStream: same port, same mutual TLS, no handler involved.
//
// An error is a non-2xx status with an [Error] as body: 400 bad_request,
// 403 refused, 409 stale_epoch, 500 internal (404, 405 and
// 413 for an unknown call, a method other than POST and a body over its
// limit, all bad_request). The [Client] returns such answers as *Error
// values (use errors.As) and transport failures as other errors that name
// the node's address.
//
// The server checks every queue file name in a FetchRequest with
// [ValidQueueName] before the Handler sees the request, so handlers only
// ever get names of queue files. Request bodies are limited to
// [MaxBatchBytes] for fetch and to much less for the other calls; replies
// to MaxBatchBytes.
package noderpc

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Handler serves the calls on a node. Errors of type *Error reach the
// caller as they are; other errors become CodeInternal. Each call's ctx is
// cancelled when the caller goes away or the server shuts down.
type Handler interface {
	State(ctx context.Context, req *StateRequest) (*StateReply, error)
	Fetch(ctx context.Context, req *FetchRequest) (*FetchReply, error)
	Join(ctx context.Context, req *JoinRequest) (*JoinReply, error)
	Command(ctx context.Context, req *CommandRequest) (*CommandReply, error)
	Delay(ctx context.Context, req *DelayRequest) error
	Crypto(ctx context.Context, req *CryptoRequest) error
}

// Error codes.
const (
	CodeStaleEpoch = "stale_epoch" // the caller's epoch is older than the node's; Epoch is the node's
	CodeBadRequest = "bad_request" // malformed request or a refused file name
	CodeRefused    = "refused"     // refused on purpose (bad token, not a candidate, ...)
	CodeInternal   = "internal"
)

// Error is an error answered by the remote node.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Epoch   int64  `json:"epoch,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// MaxBatchBytes is the largest body of a fetch request and the largest
// reply a Client reads (256 MiB): larger fetches have to be split into
// several calls.
const MaxBatchBytes = 256 << 20

// Server serves a Handler over mutual TLS.
type Server struct {
	h      Handler
	log    *slog.Logger
	keys   *Keyring // the certificate presented and the client certificates accepted
	srv    *http.Server
	base   context.Context // parent of every call's context
	cancel context.CancelFunc

	streamMu sync.Mutex
	streams  map[string]*streamListener // by stream name
	// refusals rate-limits the WARN lines of refused calls.
	refusals rateLog
	maxConns atomic.Int64 // SetMaxConns (conncap.go)
}

// NewServer returns a server presenting cert and accepting only cert.
// A nil log discards the server's messages.
func NewServer(cert tls.Certificate, h Handler, log *slog.Logger) *Server {
	return newServer(NewKeyring(cert), h, log)
}

// NewServerKeyring returns a server presenting the keyring's certificate
// and accepting the keyring's certificates, as they are at each handshake
// and request.
func NewServerKeyring(keys *Keyring, h Handler, log *slog.Logger) *Server {
	return newServer(keys, h, log)
}

// Serve accepts connections on l (a plain TCP listener; TLS is added
// here) until Shutdown, and then returns http.ErrServerClosed. It may be
// called for several listeners; after Shutdown it closes l and returns at
// once.
func (s *Server) Serve(l net.Listener) error { return s.serve(l) }

// Shutdown stops the server: it closes the listeners, cancels the
// contexts of the calls being served (a Delay ends at once), and waits
// until they have answered or ctx is done, when it closes their
// connections and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error { return s.shutdown(ctx) }

// Client calls other nodes. It keeps connections alive between calls and
// is safe for concurrent use.
type Client struct {
	hc       *http.Client
	tr       *http.Transport
	joinOnly bool // made by NewJoinClient: only Join is allowed
}

// NewClient returns a client presenting cert and accepting only cert
// from the server.
func NewClient(cert tls.Certificate) *Client { return newClusterClient(NewKeyring(cert)) }

// NewClientFrom is NewClient whose connections leave from the local
// address source (this node's node RPC address; nil or unspecified: the
// system's choice), so that firewalls and logs see node-to-node traffic
// come from the node's own address.
func NewClientFrom(cert tls.Certificate, source net.IP) *Client {
	return NewClientKeyring(NewKeyring(cert), source)
}

// NewClientKeyring is NewClientFrom following a keyring: it presents the
// keyring's certificate and accepts the keyring's certificates from
// servers, as they are at each handshake.
func NewClientKeyring(keys *Keyring, source net.IP) *Client {
	c := newClusterClient(keys)
	if source != nil && !source.IsUnspecified() {
		d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: source}}
		c.tr.DialContext = d.DialContext
	}
	return c
}

// NewJoinClient returns a client without a certificate that accepts only
// a server certificate whose SHA-256 fingerprint (Fingerprint) is fp; it
// may only Join.
func NewJoinClient(fp string) *Client { return newJoinClient(fp) }

// Fingerprint is the hex SHA-256 of a DER certificate, in lower case.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// ValidQueueName refuses names that are not queue files: job-N, serial,
// drain, version, archive/<N div 10000>/job-N. N is a decimal number from
// 1 without sign or leading zeros; the archive directory must be the
// job's. The error names the file.
func ValidQueueName(name string) error { return validQueueName(name) }

// State asks the node at addr (HOST:PORT) for its queue state.
func (c *Client) State(ctx context.Context, addr string, req *StateRequest) (*StateReply, error) {
	return call[StateReply](ctx, c, addr, pathState, req)
}

// Fetch asks the node at addr for queue files. Files whose names are not
// queue file names (ValidQueueName) make it an error.
func (c *Client) Fetch(ctx context.Context, addr string, req *FetchRequest) (*FetchReply, error) {
	rep, err := call[FetchReply](ctx, c, addr, pathFetch, req)
	if err != nil {
		return nil, err
	}
	if err := checkFetchReply(addr, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// Join asks the node at addr to let this node join the cluster.
func (c *Client) Join(ctx context.Context, addr string, req *JoinRequest) (*JoinReply, error) {
	return call[JoinReply](ctx, c, addr, pathJoin, req)
}

// Command runs a restricted command on the node at addr.
func (c *Client) Command(ctx context.Context, addr string, req *CommandRequest) (*CommandReply, error) {
	return call[CommandReply](ctx, c, addr, pathCommand, req)
}

// Delay sleeps on the node at addr; cancelling ctx ends the sleep there
// too.
func (c *Client) Delay(ctx context.Context, addr string, req *DelayRequest) error {
	_, err := call[struct{}](ctx, c, addr, pathDelay, req)
	return err
}

// Crypto asks the node at addr to carry out one phase of a cluster
// certificate renewal.
func (c *Client) Crypto(ctx context.Context, addr string, req *CryptoRequest) error {
	_, err := call[struct{}](ctx, c, addr, pathCrypto, req)
	return err
}

// Close releases idle connections. The client stays usable.
func (c *Client) Close() { c.tr.CloseIdleConnections() }
