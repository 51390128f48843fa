// Command jobqd is the jobq node daemon. On a data directory without a
// cluster it starts a one-node cluster with itself as master: the
// zero-configuration default. Its command line, configuration file
// (/etc/jobq/jobqd.conf) and service manager notifications are in
// internal/jobqd; see "jobqd --help". It is package server with no opcodes
// of its own: a program that embeds jobq with its own opcodes is built the
// same way (see examples/embed).
package main

import "github.com/jobq-dev/jobq/server"

func main() { server.Run(server.Options{}) }
