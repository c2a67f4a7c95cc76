package devices

// PowerAction is what a guest asked of the platform.
type PowerAction int

const (
	PowerOff PowerAction = iota + 1
	PowerReset
)

func (a PowerAction) String() string {
	switch a {
	case PowerOff:
		return "poweroff"
	case PowerReset:
		return "reset"
	}
	return "unknown"
}

// PowerFunc receives a guest's power request. It must not block.
type PowerFunc func(PowerAction)
