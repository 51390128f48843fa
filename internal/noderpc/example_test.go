package noderpc_test

import (
	"fmt"

	"github.com/jobq-dev/jobq/internal/noderpc"
)

func ExampleValidQueueName() {
	for _, name := range []string{"job-17", "archive/1/job-12345", "serial", "job-017", "../job-17", "archive/0/job-12345"} {
		fmt.Println(noderpc.ValidQueueName(name))
	}
	// Output:
	// <nil>
	// <nil>
	// <nil>
	// "job-017" is not a queue file name (job-N, serial, drain, version, schedule-NAME or archive/D/job-N)
	// "../job-17" is not a queue file name (job-N, serial, drain, version, schedule-NAME or archive/D/job-N)
	// "archive/0/job-12345" is not a queue file name: job 12345 is archived under archive/1
}
