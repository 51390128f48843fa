package web

import (
	"net/http"
)

// OpcodeParam is one parameter of a declared opcode, as the opcodes page
// shows it.
type OpcodeParam struct {
	Name, Type, Doc string
	Required        bool
	// Default is the default's JSON; Allowed says what values are
	// accepted beyond the type (pattern, range, enum values).
	Default, Allowed string
}

// Opcode is a declared opcode (internal/opdef) as the opcodes page shows
// it.
type Opcode struct {
	ID, Version, Summary, Description string
	RunsOn, Program, Timeout, Locks   string
	Retries                           string // "" when not retried
	Params                            []OpcodeParam
}

// opcodesPage lists the cluster's declared opcodes with their parameters.
func (h *Handler) opcodesPage(w http.ResponseWriter, r *http.Request, s *sessionInfo) {
	var defs []Opcode
	if h.cfg.Opcodes != nil {
		defs = h.cfg.Opcodes()
	}
	h.render(w, r, s, http.StatusOK, "opcodes", &page{Title: "Opcodes", Nav: "opcodes", Data: defs})
}
