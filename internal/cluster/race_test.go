//go:build race

package cluster

// raceEnabled: the race detector makes the model checker several times
// slower; TestModel then explores smaller configurations.
const raceEnabled = true
