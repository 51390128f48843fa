package query

import "fmt"

// Ganeti exception classes used by this package (Error.Class).
const (
	// ClassRequest is not a Ganeti class: luxid rejects a structurally
	// malformed filter while decoding the LUXI request, and its reply
	// result is then a bare string (see Error.Result).
	ClassRequest = ""
	// ClassParameterError: a filter names an unknown field, or compares
	// values of different types.
	ClassParameterError = "ParameterError"
	// ClassGenericError: a requested job id that is not a valid id, or a
	// "=[]" filter on a value that is not a list of the right type.
	ClassGenericError = "GenericError"
	// ClassProgrammerError: a getter returned a value of the wrong shape
	// (e.g. a timestamp that is not a [seconds, microseconds] pair).
	ClassProgrammerError = "ProgrammerError"
	// ClassOpPrereqError: unknown output fields in a classic query
	// (QueryResult.Compat), with error code ECodeInval.
	ClassOpPrereqError = "OpPrereqError"
)

// ECodeInval is Ganeti's errors.ECODE_INVAL, the second argument of an
// OpPrereqError about invalid input.
const ECodeInval = "wrong_input"

// Error is an error in the shape Ganeti 3.0's luxid reports it.
//
// For Class != ClassRequest the failed LUXI reply is
//
//	{"success": false, "result": [Class, Args]}
//
// e.g. ["ParameterError", ["Can't find field named 'foo'"]]. For
// ClassRequest (a filter that does not parse) luxid replies with a bare
// string, "Failed to parse request: " followed by the message. Result
// returns the "result" member for either case.
type Error struct {
	Class string
	// Args are the exception arguments; Args[0] is the message.
	Args []any
}

func newError(class, format string, a ...any) *Error {
	return &Error{Class: class, Args: []any{fmt.Sprintf(format, a...)}}
}

// Message returns the human-readable message (Args[0]).
func (e *Error) Message() string {
	if len(e.Args) == 0 {
		return ""
	}
	if s, ok := e.Args[0].(string); ok {
		return s
	}
	return fmt.Sprint(e.Args[0])
}

func (e *Error) Error() string {
	if e.Class == ClassRequest {
		return "invalid query filter: " + e.Message()
	}
	return e.Class + ": " + e.Message()
}

// Result returns the value for the "result" member of the failed LUXI reply,
// as Ganeti's luxid would send it.
func (e *Error) Result() any {
	if e.Class == ClassRequest {
		return "Failed to parse request: " + e.Message()
	}
	args := e.Args
	if args == nil {
		args = []any{}
	}
	return []any{e.Class, args}
}
