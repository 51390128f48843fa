package web

import (
	"net/http"
	"testing"
)

// The opcodes page lists the declared opcodes with their parameters,
// escaped.
func TestOpcodesPage(t *testing.T) {
	e := newEnv(t, 2, Config{})
	v := e.login("viewer", "viewerpw")
	wantStatus(t, "none", v.get("/ui/opcodes"), http.StatusOK, "<h1>Opcodes</h1>", "No declared opcode.",
		`href="/ui/opcodes" aria-current="page">Opcodes</a>`)
	e2 := newEnv(t, 2, Config{Opcodes: func() []Opcode {
		return []Opcode{{ID: "OP_DISK_FREE", Version: "817d4a08606d7077", Summary: "Check <free> space",
			RunsOn: "nodes of nodes (parallel)", Program: "/usr/local/libexec/jobq/disk-free {path}", Timeout: "1m0s",
			Locks: "node of nodes shared", Retries: "2 attempts, backoff 5s",
			Params: []OpcodeParam{
				{Name: "nodes", Type: "list", Required: true, Doc: "nodes to check"},
				{Name: "min_free_percent", Type: "number", Default: "10", Allowed: "from 0 to 100"},
			}}}
	}})
	v2 := e2.login("viewer", "viewerpw")
	wantStatus(t, "one", v2.get("/ui/opcodes"), http.StatusOK,
		"<code>OP_DISK_FREE</code>", "version 817d4a08606d7077", "Check &lt;free&gt; space", "nodes of nodes (parallel)",
		"<code>nodes</code>", "required", "default <code>10</code>", "from 0 to 100", "2 attempts, backoff 5s")
}
