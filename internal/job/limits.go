package job

import (
	"bytes"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Limits bound what one submitted job may hold, so that a client cannot
// make the queue write quadratically (every opcode step and every log
// message rewrites the whole job file) or store what its readers cannot
// read back. The zero value of a field means its default.
type Limits struct {
	// MaxOps is the most opcodes one job may have (DefaultMaxOps).
	MaxOps int
	// MaxSize is the most bytes a job's opcode inputs may take together,
	// as submitted (DefaultMaxSize).
	MaxSize int
	// MaxDepth is the deepest nesting of arrays and objects an opcode
	// input may have, the input object itself counting as 1
	// (DefaultMaxDepth; at most HardMaxDepth).
	MaxDepth int
}

// Defaults of Limits. Ganeti's own jobs have a few opcodes of a few
// hundred bytes each, nested less than 10 deep. Each opcode step rewrites
// the whole job file about three times, so a job at both limits costs at
// most 256 x 3 x 1 MiB of writes.
const (
	DefaultMaxOps   = 256
	DefaultMaxSize  = 1 << 20
	DefaultMaxDepth = 64
	// HardMaxDepth is the deepest input New accepts whatever the limits:
	// far below the 10,000 levels the strict job file decoder reads (the
	// file nests inputs 3 levels down) and below the 1,000 levels of
	// Python's json module, which Ganeti's clients read answers with.
	HardMaxDepth = 512
)

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxOps <= 0 {
		l.MaxOps = DefaultMaxOps
	}
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	l.MaxDepth = min(l.MaxDepth, HardMaxDepth)
	return l
}

// LimitError is a submission refused by a limit. Limit names it as the
// settings do (e.g. "max_ops_per_job").
type LimitError struct {
	Limit string
	Msg   string
}

func (e *LimitError) Error() string { return e.Msg }

// CheckSubmission checks a job's opcode inputs against the limits before
// anything is built or stored: how many opcodes, how many bytes, and
// that each input is a JSON object the job file can hold as it is (see
// CheckInput).
func CheckSubmission(inputs []json.RawMessage, l Limits) error {
	l = l.WithDefaults()
	if len(inputs) == 0 {
		return fmt.Errorf("a job needs at least one opcode")
	}
	if len(inputs) > l.MaxOps {
		return &LimitError{Limit: "max_ops_per_job", Msg: fmt.Sprintf(
			"the job has %d opcodes, more than the limit of %d (max_ops_per_job); split it into several jobs", len(inputs), l.MaxOps)}
	}
	size := 0
	for _, in := range inputs {
		size += len(in)
	}
	if size > l.MaxSize {
		return &LimitError{Limit: "max_job_size", Msg: fmt.Sprintf(
			"the job's opcodes take %d bytes, more than the limit of %d (max_job_size); split it into several jobs or pass large data another way", size, l.MaxSize)}
	}
	for i, in := range inputs {
		if err := CheckInput(i, in, l.MaxDepth); err != nil {
			return err
		}
	}
	return nil
}

// CheckInput checks that opcode i's input is one JSON object that the
// strict job file decoder (Decode) reads back as it is: valid UTF-8 in
// every string, no member name twice in one object, and nested at most
// maxDepth levels (the object itself is level 1).
func CheckInput(i int, in []byte, maxDepth int) error {
	dec := jsontext.NewDecoder(bytes.NewReader(in))
	tok, err := dec.ReadToken()
	if err != nil {
		return inputError(i, err)
	}
	if tok.Kind() != '{' {
		return fmt.Errorf("opcode %d is not a JSON object", i)
	}
	for dec.StackDepth() > 0 {
		kind := dec.PeekKind()
		if kind == 0 {
			_, err := dec.ReadToken()
			return inputError(i, err)
		}
		if (kind == '{' || kind == '[') && dec.StackDepth() >= maxDepth {
			return &LimitError{Limit: "max_input_depth", Msg: fmt.Sprintf(
				"opcode %d nests arrays and objects more than %d levels deep (max_input_depth)", i, maxDepth)}
		}
		if _, err := dec.ReadToken(); err != nil {
			return inputError(i, err)
		}
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("data after the object")
		}
		return inputError(i, err)
	}
	return nil
}

func inputError(i int, err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && strings.Contains(se.Err.Error(), "UTF-8") {
		return fmt.Errorf("opcode %d holds text that is not valid UTF-8 (in %s, at byte %d); send text as UTF-8 and encode binary data (e.g. in base64)", i, se.JSONPointer, se.ByteOffset)
	}
	if errors.Is(err, jsontext.ErrDuplicateName) && se != nil {
		return fmt.Errorf("opcode %d has the member %s twice in one object; send each member once", i, se.JSONPointer)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("opcode %d is not valid JSON: it ends too early", i)
	}
	return fmt.Errorf("opcode %d is not valid JSON: %v", i, err)
}
