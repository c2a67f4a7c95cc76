package machine

// Model-specific registers govm sets or reads (SDM vol. 4, table 2-2).
const (
	msrTSC            = 0x10
	msrMiscEnable     = 0x1a0
	msrMTRRDefType    = 0x2ff
	msrTSCDeadline    = 0x6e0
	miscEnableFastStr = 1 << 0
	mtrrDefTypeEnable = 1 << 11
	mtrrTypeWriteBack = 6
)

// Local APIC register offsets (SDM vol. 3A, table 11-1, "Local APIC
// Register Address Map"): each register is 32 bits at a 16-byte stride.
const (
	lapicTPR       = 0x080
	lapicPPR       = 0x0a0
	lapicSVR       = 0x0f0
	lapicISR       = 0x100 // eight registers, vectors 0-255
	lapicIRR       = 0x200 // eight registers
	lapicLVTTimer  = 0x320
	lapicLVT0      = 0x350
	lapicLVT1      = 0x360
	lapicTimerInit = 0x380 // initial count
	lapicTimerCur  = 0x390 // current count
	lapicVectorReg = 0x10  // stride of the ISR/IRR words
)

// Local APIC register fields.
const (
	lapicSVREnable     = 1 << 8  // SDM 11.9: APIC software enable
	lapicTimerModeMask = 3 << 17 // SDM 11.5.1: LVT timer mode field
	lapicTimerPeriodic = 1 << 17
	lapicTimerDeadline = 2 << 17
	lapicModeMask      = 0x700 // SDM 11.5.1: LVT delivery mode
	lapicModeExtINT    = 0x700
	lapicModeNMI       = 0x400
	lapicLVTMasked     = 1 << 16
)
