package noderpc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"time"
)

const (
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second // below the server's idleTimeout
	maxIdleConnsPerHost = 16
)

// errForeignServer and errWrongFingerprint refuse a server's certificate.
var (
	errForeignServer    = errors.New("the node's certificate is not the cluster certificate")
	errWrongFingerprint = errors.New("the node's certificate does not have the fingerprint of the join token")
	errNoServerCert     = errors.New("the node presented no certificate")
)

func newClusterClient(keys *Keyring) *Client {
	return newClient(&tls.Config{
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return keys.Certificate(), nil
		},
		InsecureSkipVerify: true, // names are irrelevant: the certificate is pinned
		VerifyConnection: func(cs tls.ConnectionState) error {
			server, err := serverLeaf(cs)
			if err != nil {
				return err
			}
			if !keys.Accepts(server.Raw) {
				return errForeignServer
			}
			return nil
		},
		MinVersion: tls.VersionTLS13,
	}, false)
}

func newJoinClient(fp string) *Client {
	return newClient(&tls.Config{
		InsecureSkipVerify: true, // the certificate is pinned by its fingerprint
		VerifyConnection: func(cs tls.ConnectionState) error {
			server, err := serverLeaf(cs)
			if err != nil {
				return err
			}
			if !strings.EqualFold(Fingerprint(server.Raw), fp) {
				return errWrongFingerprint
			}
			return nil
		},
		MinVersion: tls.VersionTLS13,
	}, true)
}

// post sends one call and returns the body of a 2xx answer. A call
// refused for its client certificate over a connection kept alive from
// before a certificate renewal is sent once more, over a new connection
// (the server closed that one; the refusal came before any handler ran).
func post(ctx context.Context, c *Client, addr, path, name string, body []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		hr, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, "https://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("cannot reach node at %s: %w", addr, err)
		}
		hr.Header.Set("Content-Type", "application/json")
		resp, err := c.hc.Do(hr)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, abandoned(name, addr, ctxErr)
			}
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // its text repeats the URL
			}
			return nil, fmt.Errorf("cannot reach node at %s: %w", addr, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxBatchBytes+1))
		if err == nil && len(data) > MaxBatchBytes {
			resp.Body.Close()
			return nil, fmt.Errorf("the %s reply of node at %s is larger than %d bytes", name, addr, MaxBatchBytes)
		}
		drain(resp.Body)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return nil, abandoned(name, addr, ctxErr)
			}
			return nil, fmt.Errorf("cannot read the %s reply of node at %s: %w", name, addr, err)
		}
		if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
			return data, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// Given up: what the node says of it (perhaps that it saw
			// the call cancelled) comes second.
			return nil, abandoned(name, addr, ctxErr)
		}
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			if reused && attempt == 0 && e.Code == CodeRefused && e.Message == msgUnknownClientCert {
				continue
			}
			return nil, &e
		}
		return nil, fmt.Errorf("node at %s answered the %s call with %s: %s", addr, name, resp.Status, snippet(data))
	}
}

func serverLeaf(cs tls.ConnectionState) (*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errNoServerCert
	}
	return cs.PeerCertificates[0], nil
}

func newClient(tc *tls.Config, joinOnly bool) *Client {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	tr := &http.Transport{
		Proxy:               nil, // nodes talk directly, whatever the environment says
		DialContext:         (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tc,
		TLSHandshakeTimeout: tlsHandshakeTimeout,
		MaxIdleConnsPerHost: maxIdleConnsPerHost,
		IdleConnTimeout:     idleConnTimeout,
		DisableCompression:  true,
		Protocols:           &protocols,
	}
	return &Client{
		tr: tr,
		hc: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a node never redirects
			},
		},
		joinOnly: joinOnly,
	}
}

// call makes one call to the node at addr and decodes its reply.
func call[Rep any](ctx context.Context, c *Client, addr, path string, req any) (*Rep, error) {
	name := strings.TrimPrefix(path, "/v1/")
	if c.joinOnly && path != pathJoin {
		return nil, fmt.Errorf("a join client cannot make the %s call to node at %s: it may only join", name, addr)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("cannot encode the %s request for node at %s: %w", name, addr, err)
	}
	data, err := post(ctx, c, addr, path, name, body)
	if err != nil {
		return nil, err
	}
	rep := new(Rep)
	if err := json.Unmarshal(data, rep); err != nil {
		return nil, fmt.Errorf("node at %s sent a malformed %s reply: %w", addr, name, err)
	}
	return rep, nil
}

func abandoned(name, addr string, err error) error {
	return fmt.Errorf("the %s call to node at %s was abandoned: %w", name, addr, err)
}

// snippet is the start of an unexpected body, for an error message.
func snippet(data []byte) string {
	const limit = 200
	s := strings.TrimSpace(string(data))
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	if s == "" {
		return "an empty body"
	}
	return fmt.Sprintf("%q", s)
}
