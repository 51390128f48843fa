package noderpc

import "github.com/jobq-dev/jobq/internal/conncap"

// SetMaxConns caps the connections open at once on each listener of s
// (node-to-node calls and the consensus streams count alike), so that
// clients flooding the node RPC port, which anyone may reach before TLS,
// cannot take the descriptors LUXI and RAPI need. A connection over the
// cap is closed at once, before its TLS handshake. 0 means a quarter of
// the process's descriptor limit (read at each accept), at least 16;
// negative means no cap. Set it before Serve.
func (s *Server) SetMaxConns(n int) { s.maxConns.Store(int64(n)) }

func (s *Server) connCap() int {
	switch n := s.maxConns.Load(); {
	case n > 0:
		return int(n)
	case n < 0:
		return 0
	}
	return conncap.DefaultMax()
}
