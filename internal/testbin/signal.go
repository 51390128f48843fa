package testbin

import "syscall"

// Pause stops the process with SIGSTOP (it keeps its sockets but answers
// nothing), as a hung node would.
func (d *Daemon) Pause() error { return d.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process with SIGCONT.
func (d *Daemon) Resume() error { return d.cmd.Process.Signal(syscall.SIGCONT) }

// Terminate sends SIGTERM (unless jobqd was killed or stopped already)
// and returns at once; Stop then waits for the exit.
func (d *Daemon) Terminate() {
	d.signal.Do(func() { _ = d.cmd.Process.Signal(syscall.SIGTERM) })
}
