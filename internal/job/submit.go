package job

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// SubmitError is a submission refused with Ganeti's words (which begin
// with a capital letter, as Ganeti's messages do).
type SubmitError string

func (e SubmitError) Error() string { return string(e) }

// SubmitPriorities are the priorities an opcode may be submitted with, as
// Ganeti's OP_PRIO_SUBMIT_VALID: low, normal and high (10, 0, -10). The
// queue itself uses the whole range -20..19 (a waiting job's priority rises
// as its lock waits time out), but a client asks for one of these three.
var SubmitPriorities = []int{0, 10, -10}

// CheckSubmitPriorities refuses a job one of whose opcodes asks for a
// priority outside SubmitPriorities (a missing or null priority is the
// default, 0), with Ganeti's message: "Opcode 1 has invalid priority 19,
// allowed are 0, 10, -10".
func CheckSubmitPriorities(inputs []json.RawMessage) error {
	for i, in := range inputs {
		var v struct {
			Priority json.RawMessage `json:"priority"`
		}
		if err := json.Unmarshal(in, &v); err != nil {
			continue // CheckSubmission says what is wrong with it
		}
		p := strings.TrimSpace(string(v.Priority))
		if p == "" || p == "null" || validSubmitPriority(p) {
			continue
		}
		allowed := make([]string, len(SubmitPriorities))
		for k, a := range SubmitPriorities {
			allowed[k] = strconv.Itoa(a)
		}
		return SubmitError(fmt.Sprintf("Opcode %d has invalid priority %s, allowed are %s", i, pyScalar(v.Priority), strings.Join(allowed, ", ")))
	}
	return nil
}

func validSubmitPriority(p string) bool {
	var n json.Number
	if json.Unmarshal([]byte(p), &n) != nil {
		return false
	}
	x, err := n.Int64()
	if err != nil {
		return false
	}
	for _, a := range SubmitPriorities {
		if int64(a) == x {
			return true
		}
	}
	return false
}

// pyScalar shows a JSON value as Python would print it in a message: a
// string with single quotes, null as None, booleans capitalised, anything
// else as its JSON text.
func pyScalar(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return string(raw)
	}
	switch x := v.(type) {
	case string:
		return "'" + strings.ReplaceAll(strings.ReplaceAll(x, `\`, `\\`), "'", `\'`) + "'"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	}
	return string(raw)
}

// noRelativeDepsDesc is how Ganeti describes the dependencies a single job
// may have (opcodes_base.TNoRelativeJobDependencies).
const noRelativeDepsDesc = "None or (List of (((List of Anything) or Tuple) and (Length 2) and (Item 0 is JobId, item 1 is (List of (OneOf canceled, success, error)))))"

// CheckNoRelativeDeps refuses a job submitted on its own (LUXI SubmitJob)
// whose opcodes depend on a relative job id (a negative one, which only
// means something among the jobs of one SubmitManyJobs call), with
// Ganeti's message: "Opcode 0 has invalid dependencies, must match ...:
// [[-1, []]]". Dependencies that do not parse are left to the opcode, which
// fails with OpPrereqError when it is reached.
func CheckNoRelativeDeps(inputs []json.RawMessage) error {
	for i, in := range inputs {
		c, err := ParseCommon(in)
		if err != nil {
			continue
		}
		for _, d := range c.Depends {
			if d.JobID < 0 {
				return SubmitError(fmt.Sprintf("Opcode %d has invalid dependencies, must match %s: %s", i, noRelativeDepsDesc, depsRepr(c.Depends)))
			}
		}
	}
	return nil
}

// depsRepr shows dependencies as Python prints the list: [[-1, ['success']]].
func depsRepr(deps []Dep) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range deps {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "[%d, ", d.JobID)
		if d.Statuses == nil {
			b.WriteString("None")
		} else {
			b.WriteByte('[')
			for k, s := range d.Statuses {
				if k > 0 {
					b.WriteString(", ")
				}
				b.WriteString("'" + string(s) + "'")
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteByte(']')
	return b.String()
}

// ResolveRelativeDeps rewrites the relative dependencies (negative job ids)
// of a job's opcodes to the ids resolve gives them, as Ganeti does for the
// jobs of one SubmitManyJobs call (-1 is the job submitted just before in
// the same call). resolve answers false for a relative id that names no
// job of the call; the job is then refused with Ganeti's message "Unable
// to resolve relative job ID -2". Inputs without relative dependencies are
// returned as they are.
func ResolveRelativeDeps(inputs []json.RawMessage, resolve func(rel int64) (int64, bool)) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for i, in := range inputs {
		c, err := ParseCommon(in)
		if err != nil {
			continue
		}
		relative := false
		for _, d := range c.Depends {
			relative = relative || d.JobID < 0
		}
		if !relative {
			continue
		}
		deps := make([]Dep, len(c.Depends))
		for k, d := range c.Depends {
			deps[k] = d
			if d.JobID < 0 {
				id, ok := resolve(d.JobID)
				if !ok {
					return nil, SubmitError(fmt.Sprintf("Unable to resolve relative job ID %d", d.JobID))
				}
				deps[k].JobID = id
			}
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(in, &m); err != nil {
			continue
		}
		m["depends"] = resolveDeps(0, deps)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("opcode %d: %w", i, err)
		}
		if out == nil {
			out = append([]json.RawMessage(nil), inputs...)
		}
		out[i] = b
	}
	if out == nil {
		return inputs, nil
	}
	return out, nil
}
