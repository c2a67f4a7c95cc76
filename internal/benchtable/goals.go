package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// goal is a bound on govm's ratio to one peer, for the measures whose
// names start with Prefix.
type goal struct {
	Prefix string  `json:"prefix"`
	Peer   string  `json:"peer"`
	Bound  float64 `json:"bound"`
	AtMost bool    `json:"at_most"` // the ratio must be at most Bound (else at least)
}

func (g goal) String() string {
	op := "≥"
	if g.AtMost {
		op = "≤"
	}
	return fmt.Sprintf("%s%.2f× %s", op, g.Bound, g.Peer)
}

// absGoal is a bound on govm's own figure (its median at most Max) for
// the measures with this prefix and suffix.
type absGoal struct {
	Prefix string  `json:"prefix"`
	Suffix string  `json:"suffix"`
	Max    float64 `json:"max"`
}

// goals are what the table judges govm's figures against.
type goals struct {
	Ratio    []goal    `json:"ratio"`
	Absolute []absGoal `json:"absolute"`
}

//go:embed goals.json
var defaultGoals []byte

// loadGoals reads a goals file, refusing unknown fields and peers.
func loadGoals(b []byte) (goals, error) {
	var g goals
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&g); err != nil {
		return goals{}, fmt.Errorf("goals: %w", err)
	}
	for _, r := range g.Ratio {
		if !isPeer(r.Peer) || r.Peer == "govm" || r.Bound <= 0 {
			return goals{}, fmt.Errorf("goals: bad ratio goal %+v", r)
		}
	}
	return g, nil
}
