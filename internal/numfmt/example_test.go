package numfmt_test

import (
	"fmt"

	"github.com/jobq-dev/jobq/internal/numfmt"
)

func ExampleShowDouble() {
	for _, d := range []float64{0.01, 0.3, 5, 1e7} {
		fmt.Printf("TEST_DELAY(%s)\n", numfmt.ShowDouble(d))
	}
	// Output:
	// TEST_DELAY(1.0e-2)
	// TEST_DELAY(0.3)
	// TEST_DELAY(5.0)
	// TEST_DELAY(1.0e7)
}
