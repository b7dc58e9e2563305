// Register map of the 16550A UART, as offsets from its base port and bit
// names.  Sources: National Semiconductor PC16550D datasheet, Table II
// ("Summary of Registers"), and Linux include/uapi/linux/serial_reg.h, whose
// names these follow so that the two can be read side by side.
#pragma once

#include <cstdint>

namespace tapvm::uart {

// --- Offsets (PC16550D Table II).  With LCR.DLAB set, offsets 0 and 1 reach
// the divisor latch instead of RBR/THR and IER.
inline constexpr uint8_t kRbr = 0;  // read: receiver buffer
inline constexpr uint8_t kThr = 0;  // write: transmitter holding
inline constexpr uint8_t kDll = 0;  // DLAB=1: divisor latch, low byte
inline constexpr uint8_t kIer = 1;
inline constexpr uint8_t kDlm = 1;  // DLAB=1: divisor latch, high byte
inline constexpr uint8_t kIir = 2;  // read: interrupt identification
inline constexpr uint8_t kFcr = 2;  // write: FIFO control
inline constexpr uint8_t kLcr = 3;
inline constexpr uint8_t kMcr = 4;
inline constexpr uint8_t kLsr = 5;
inline constexpr uint8_t kMsr = 6;
inline constexpr uint8_t kScr = 7;

// --- IER: which conditions may interrupt.  Bits 4-7 are always 0 on a
// 16550A; Linux's autoconfig relies on that (the XScale UUE test, bit 6).
inline constexpr uint8_t kIerRdi = 0x01;   // ERBFI: received data available
inline constexpr uint8_t kIerThri = 0x02;  // ETBEI: THR empty
inline constexpr uint8_t kIerRlsi = 0x04;  // ELSI: receiver line status
inline constexpr uint8_t kIerMsi = 0x08;   // EDSSI: modem status
inline constexpr uint8_t kIerMask = 0x0f;

// --- IIR: bit 0 clear means "an interrupt is pending"; bits 1-3 say which
// (PC16550D Table IV); bits 6-7 are both set while the FIFOs are enabled.
inline constexpr uint8_t kIirNoInt = 0x01;
inline constexpr uint8_t kIirMsi = 0x00;      // priority 4: modem status
inline constexpr uint8_t kIirThri = 0x02;     // priority 3: THR empty
inline constexpr uint8_t kIirRdi = 0x04;      // priority 2: data available
inline constexpr uint8_t kIirRlsi = 0x06;     // priority 1: line status
inline constexpr uint8_t kIirTimeout = 0x0c;  // priority 2: character timeout
inline constexpr uint8_t kIirIdMask = 0x0e;
inline constexpr uint8_t kIirFifoEnabled = 0xc0;

// --- FCR (write only).  Bit 0 enables both FIFOs; toggling it empties them.
// Bits 1 and 2 clear the receive and transmit FIFO and then clear
// themselves; bits 6-7 set the receive trigger level.
inline constexpr uint8_t kFcrEnable = 0x01;
inline constexpr uint8_t kFcrClearRcvr = 0x02;
inline constexpr uint8_t kFcrClearXmit = 0x04;
inline constexpr uint8_t kFcrDmaSelect = 0x08;
inline constexpr uint8_t kFcrTriggerMask = 0xc0;
// The bits FCR keeps (the rest are self-clearing or reserved on a 16550A).
inline constexpr uint8_t kFcrStoredMask = kFcrEnable | kFcrDmaSelect | kFcrTriggerMask;

// --- LCR.  Only DLAB changes how tapvm behaves: there is no wire, so word
// length, parity and stop bits have no effect (see uart16550.h).
inline constexpr uint8_t kLcrDlab = 0x80;

// --- MCR.  Bits 5-7 are always 0 on a 16550A.
inline constexpr uint8_t kMcrDtr = 0x01;
inline constexpr uint8_t kMcrRts = 0x02;
inline constexpr uint8_t kMcrOut1 = 0x04;
inline constexpr uint8_t kMcrOut2 = 0x08;  // on a PC: gates the IRQ line
inline constexpr uint8_t kMcrLoop = 0x10;
inline constexpr uint8_t kMcrMask = 0x1f;

// --- LSR.
inline constexpr uint8_t kLsrDr = 0x01;    // data ready
inline constexpr uint8_t kLsrOe = 0x02;    // overrun error
inline constexpr uint8_t kLsrPe = 0x04;    // parity error
inline constexpr uint8_t kLsrFe = 0x08;    // framing error
inline constexpr uint8_t kLsrBi = 0x10;    // break interrupt
inline constexpr uint8_t kLsrThre = 0x20;  // THR (or TX FIFO) empty
inline constexpr uint8_t kLsrTemt = 0x40;  // THR and shift register empty
// Conditions behind the line-status interrupt; all clear when LSR is read.
inline constexpr uint8_t kLsrErrorBits = kLsrOe | kLsrPe | kLsrFe | kLsrBi;

// --- MSR: bits 4-7 are the modem input lines, bits 0-3 record changes.
inline constexpr uint8_t kMsrDcts = 0x01;  // CTS changed
inline constexpr uint8_t kMsrDdsr = 0x02;  // DSR changed
inline constexpr uint8_t kMsrTeri = 0x04;  // RI went from on to off
inline constexpr uint8_t kMsrDdcd = 0x08;  // DCD changed
inline constexpr uint8_t kMsrCts = 0x10;
inline constexpr uint8_t kMsrDsr = 0x20;
inline constexpr uint8_t kMsrRi = 0x40;
inline constexpr uint8_t kMsrDcd = 0x80;
inline constexpr uint8_t kMsrDeltaMask = 0x0f;

}  // namespace tapvm::uart
