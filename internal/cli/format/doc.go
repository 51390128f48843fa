// Package format renders job-queue data the way Ganeti's command-line tools
// (gnt-job, gnt-cluster queue, gnt-debug delay) print it, so that the jobq
// CLI's output matches the reference captures byte for byte.
//
// The functions are pure: they take values decoded from LUXI replies and
// return strings, or write to an io.Writer. No sockets, files or clocks are
// touched; every function that prints a local time takes a *time.Location
// (nil means time.Local) so tests are deterministic.
//
// # Input values
//
// Values are what encoding/json produces for `any`: nil, bool, string,
// json.Number (Decoder.UseNumber) or float64, []any and map[string]any.
// Go integers, other slices and arrays, and the Tuple and OrderedDict types
// of this package are accepted too.
//
// Python distinguishes ints from floats and so does the output: a
// json.Number is an int when its literal has no '.', 'e' or 'E' (so the
// "1.0e-2" luxid sends prints as 0.01 and "5.0" as 5.0), Go integer types
// are ints, and float32/float64 are floats (5.0 prints "5.0"). Decode with
// UseNumber: plain float64 decoding loses that distinction (every number
// becomes a float) and the precision of large integers such as the
// nanosecond timestamps in an opcode's "reason". To soften that, the
// job-specific functions (FormatJobListValue, JobListTable, JobInfo, ...)
// first pass their input through IntegralFloatsToInts, so ids, timestamps
// and priorities decoded as float64 still print as integers (at the price
// of a duration of 5.0 printing as 5); PyRepr and PyStr themselves print a
// float64 as a float.
//
// Maps are printed with their keys sorted (Python would print a dict in
// insertion order, which a Go map does not keep); use OrderedDict to keep an
// explicit order.
package format
