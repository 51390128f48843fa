package format

import (
	"fmt"
	"strings"
)

// errorParents maps each of Ganeti's error classes (the GenericError
// subclasses a client recognises in an encoded error) to its parent class.
var errorParents = map[string]string{
	"GenericError":             "",
	"LockError":                "GenericError",
	"PidFileLockError":         "LockError",
	"HypervisorError":          "GenericError",
	"HotplugError":             "HypervisorError",
	"ProgrammerError":          "GenericError",
	"BlockDeviceError":         "GenericError",
	"ConfigurationError":       "GenericError",
	"ConfigVersionMismatch":    "ConfigurationError",
	"ConfigVerifyError":        "ConfigurationError",
	"AddressPoolError":         "GenericError",
	"ReservationError":         "GenericError",
	"RemoteError":              "GenericError",
	"SignatureError":           "GenericError",
	"ParameterError":           "GenericError",
	"ResultValidationError":    "GenericError",
	"OpPrereqError":            "GenericError",
	"OpExecError":              "GenericError",
	"OpResultError":            "GenericError",
	"OpRetryNotSupportedError": "GenericError",
	"DeviceCreationError":      "GenericError",
	"OpCodeUnknown":            "GenericError",
	"JobLost":                  "GenericError",
	"JobCanceled":              "GenericError",
	"JobFileCorrupted":         "GenericError",
	"ResolverError":            "GenericError",
	"HooksFailure":             "GenericError",
	"HooksAbort":               "HooksFailure",
	"UnitParseError":           "GenericError",
	"ParseError":               "GenericError",
	"TypeEnforcementError":     "GenericError",
	"X509CertError":            "GenericError",
	"TagError":                 "GenericError",
	"CommandError":             "GenericError",
	"StorageError":             "GenericError",
	"InotifyError":             "GenericError",
	"JobQueueError":            "GenericError",
	"JobQueueDrainError":       "JobQueueError",
	"JobQueueFull":             "JobQueueError",
	"ConfdMagicError":          "GenericError",
	"ConfdClientError":         "GenericError",
	"UdpDataSizeError":         "GenericError",
	"NoCtypesError":            "GenericError",
	"IPAddressError":           "GenericError",
	"LuxiError":                "GenericError",
	"QueryFilterParseError":    "ParseError",
	"RapiTestResult":           "GenericError",
	"FileStoragePathError":     "GenericError",
	"SshUpdateError":           "GenericError",
}

// isA reports whether class is base or derives from it.
func isA(class, base string) bool {
	for c := class; c != ""; c = errorParents[c] {
		if c == base {
			return true
		}
	}
	return false
}

// DecodeError recognises an encoded Ganeti error, [class, [args...]] with a
// class Ganeti's clients know (OpPrereqError, OpExecError, GenericError,
// JobQueueDrainError, ...), as LUXI replies and failed opcode results carry
// it.
func DecodeError(v any) (class string, args []any, ok bool) {
	l, isList := asList(v)
	if !isList || len(l) != 2 {
		return "", nil, false
	}
	class, isStr := l[0].(string)
	if !isStr {
		return "", nil, false
	}
	if _, known := errorParents[class]; !known {
		return "", nil, false
	}
	args, isList = asList(l[1])
	if !isList {
		return "", nil, false
	}
	return class, args, true
}

// EncodeError returns the encoded form of an error: [class, [args...]].
func EncodeError(class string, args ...any) []any {
	if args == nil {
		args = []any{}
	}
	return []any{class, args}
}

// exceptionStr is Python's str() of an exception with these arguments.
func exceptionStr(args []any) string {
	switch len(args) {
	case 0:
		return ""
	case 1:
		return PyStr(args[0])
	}
	return PyRepr(Tuple(args))
}

// FormatError renders an error the way Ganeti's command-line tools print it
// and returns the exit code they use (1, or 2 for a corrupt
// configuration). encoded is an encoded Ganeti error ([class, [args...]]);
// for example
//
//	["OpPrereqError", ["Duration must be greater than zero"]]
//	  → Failure: prerequisites not met for this operation:
//	    Duration must be greater than zero
//	["OpPrereqError", ["Node 'no-such-node' not known", "unknown_entity"]]
//	  → Failure: prerequisites not met for this operation:
//	    error type: unknown_entity, error details:
//	    Node 'no-such-node' not known
//	["OpExecError", ["x"]]     → Failure: command execution error:\nx
//	["GenericError", ["Queue drained"]] → Unhandled Ganeti error: Queue drained
//
// Any other value (an unknown class, a bare string) is what Ganeti's job
// polling turns into an OpExecError: "Failure: command execution
// error:\n" followed by the value's str(). The text has no final newline.
func FormatError(encoded any) (exitCode int, msg string) {
	class, args, ok := DecodeError(encoded)
	if !ok {
		return 1, "Failure: command execution error:\n" + PyStr(encoded)
	}
	return formatError(class, args)
}

func formatError(class string, args []any) (int, string) {
	str := exceptionStr(args)
	if class == "DeviceCreationError" && len(args) > 0 {
		str = PyStr(args[0]) // its str() is its message
	}
	arg0 := func() string {
		if len(args) > 0 {
			return PyStr(args[0])
		}
		return ""
	}
	var msg string
	switch {
	case isA(class, "ConfigurationError"):
		return 2, "Corrupt configuration file: " + str + "\nAborting."
	case class == "HooksAbort":
		var b strings.Builder
		b.WriteString("Failure: hooks execution failed:\n")
		var results []any
		if len(args) > 0 {
			results, _ = asList(args[0])
		}
		for _, r := range results {
			e, _ := asList(r)
			for len(e) < 3 {
				e = append(e, nil)
			}
			if pyTruthy(e[2]) {
				fmt.Fprintf(&b, "  node: %s, script: %s, output: %s\n", PyStr(e[0]), PyStr(e[1]), PyStr(e[2]))
			} else {
				fmt.Fprintf(&b, "  node: %s, script: %s (no output)\n", PyStr(e[0]), PyStr(e[1]))
			}
		}
		msg = b.String()
	case class == "HooksFailure":
		msg = "Failure: hooks general failure: " + str
	case class == "ResolverError":
		msg = "Failure: can't resolve hostname '" + arg0() + "'"
	case class == "OpPrereqError":
		if len(args) == 2 {
			msg = "Failure: prerequisites not met for this operation:\nerror type: " +
				PyStr(args[1]) + ", error details:\n" + PyStr(args[0])
		} else {
			msg = "Failure: prerequisites not met for this operation:\n" + str
		}
	case class == "OpExecError":
		msg = "Failure: command execution error:\n" + str
	case class == "TagError":
		msg = "Failure: invalid tag(s) given:\n" + str
	case class == "JobQueueDrainError":
		msg = "Failure: the job queue is marked for drain and doesn't accept new requests"
	case class == "JobQueueFull":
		msg = "Failure: the job queue is full and doesn't accept new job submissions until old jobs are archived"
	case class == "TypeEnforcementError":
		msg = "Parameter Error: " + str
	case class == "ParameterError":
		msg = "Failure: unknown/wrong parameter name '" + str + "'"
	case class == "JobLost":
		msg = "Error checking job status: " + str
	case class == "QueryFilterParseError":
		msg = "Error while parsing query filter: " + arg0()
	default:
		msg = "Unhandled Ganeti error: " + str
	}
	return 1, strings.TrimRight(msg, "\n")
}

// OpError is FormatError without the exit code.
func OpError(encoded any) string {
	_, msg := FormatError(encoded)
	return msg
}

// JobFailed returns what `gnt-job wait` and `gnt-job watch` print to
// stderr when a job did not succeed, without a final newline:
//
//	Job 6039 failed: Failure: prerequisites not met for this operation:
//	Duration must be greater than zero
//
// encoded is the job's error, as FinishedJobError returns it.
func JobFailed(jobID any, encoded any) string {
	return "Job " + intStr(jobID) + " failed: " + OpError(encoded)
}

// FinishedJobError decides, from a finished job's status, opstatus and
// opresult fields, whether waiting for it failed, as Ganeti's job polling
// does, and returns the error to pass to OpError or JobFailed:
//
//   - success: no error (failed is false);
//   - canceling or canceled: ["JobCanceled", ["Job was canceled"]];
//   - the first opcode whose status is error: its result when that is an
//     encoded error (e.g. the OpPrereqError of a rejected parameter);
//     otherwise an OpExecError with the result's text, prefixed with
//     "partial failure (opcode N): " when an earlier opcode succeeded;
//   - no failed opcode: an OpExecError with the text of all results.
func FinishedJobError(status, opstatus, opresult any) (encoded any, failed bool) {
	switch PyStr(status) {
	case "success":
		return nil, false
	case "canceling", "canceled":
		return EncodeError("JobCanceled", "Job was canceled"), true
	}
	statuses, _ := asList(opstatus)
	results, _ := asList(opresult)
	hasOK := false
	for i := 0; i < len(statuses) && i < len(results); i++ {
		switch PyStr(statuses[i]) {
		case "success":
			hasOK = true
		case "error":
			msg := results[i]
			if _, _, ok := DecodeError(msg); ok {
				return msg, true
			}
			if hasOK {
				return EncodeError("OpExecError", fmt.Sprintf("partial failure (opcode %d): %s", i, PyStr(msg))), true
			}
			return EncodeError("OpExecError", PyStr(msg)), true
		}
	}
	return EncodeError("OpExecError", opresult), true
}

// LuxiError renders the result of a failed LUXI call ({"success": false,
// "result": R}) as Ganeti's clients print it, with the exit code: an
// encoded Ganeti error as FormatError does (["GenericError", ["Queue
// drained"]] → "Unhandled Ganeti error: Queue drained"), anything else
// (e.g. a bare message) as "Unhandled protocol error while talking to the
// master daemon:\n" and the result's text.
func LuxiError(result any) (exitCode int, msg string) {
	if class, args, ok := DecodeError(result); ok {
		return formatError(class, args)
	}
	return 1, "Unhandled protocol error while talking to the master daemon:\n" + PyStr(result)
}

// CannotConnect is what Ganeti's clients print when the daemon's socket
// does not answer.
func CannotConnect(socketPath string) string {
	return "Cannot communicate with socket '" + socketPath + "'.\n" +
		"Is the process running and listening for connections?"
}
