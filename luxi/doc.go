// Package luxi implements LUXI, the local client protocol of Ganeti's job
// queue, as spoken by Ganeti 3.0's Python clients and its luxid daemon.
//
// # Wire format
//
// A connection carries messages in both directions. Each message is UTF-8
// JSON followed by the byte 0x03 (Ganeti's Python client puts a newline
// before the terminator; whitespace before it is accepted). A request is
//
//	{"method": "SubmitJob", "args": [...], "version": 3000000}
//
// and its reply is either
//
//	{"success":true,"result":20}
//	{"success":false,"result":["GenericError",["Queue drained"]]}
//	{"success":false,"result":"Failed to parse request: ..."}
//
// The last form, with a string result, answers a request the server could
// not parse, including an unknown method (see [UnknownMethod] and
// [RequestError]). Replies are written as luxid writes them: compact JSON,
// "success" before "result", no HTML escaping. For the same value they are
// byte-identical to luxid's, with the limits of encoding/json: it formats
// floats as Go does (0.01 where luxid writes 1.0e-2), orders map keys
// alphabetically, and escapes U+2028 and U+2029. A [json.RawMessage] in a
// result is passed through as it is (only whitespace is removed).
//
// A connection carries any number of requests; they are answered in order.
//
// # Server
//
// A [Server] accepts connections on a [net.Listener] (see [ListenUnix]) and
// passes each parsed [Request] to its [Handler]. The handler owns the
// methods: the package does not know Ganeti's calls. Each connection has its
// own goroutines, so slow or idle clients do not hold up others.
//
// # Client
//
// A [Client] sends calls to a server's socket. Failure replies are returned
// as [*Error].
package luxi
