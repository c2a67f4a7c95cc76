//go:build race

package confine

// raceDetector: this test binary runs under the race detector.
const raceDetector = true
