// qfota's bridge over rp2040js: an emulated Raspberry Pi Pico running a MicroPython UF2.
//
//   node bridge.mjs --firmware FW.uf2 --bootrom BOOTROM.bin [--flash FILE] [--cts-window N]
//                   [--tx-baud N|line] [--miss-reconnects N]
//
// stdin/stdout carry frames: one type byte, a 4-byte big-endian length, the payload.
//   to the host   'R' USB-CDC bytes from the board   'U' UART0 TX bytes
//                 'E' an event line (text): "ready", "reset <reason>", "baud <n>", ...
//   from the host 'R' bytes for the USB-CDC REPL     'U' bytes for UART0 RX
//                 'A' u32: the host has consumed that many UART0 TX bytes (CTS stand-in)
//                 'L' u8: SET_CONTROL_LINE_STATE for the CDC interface (bit 0 DTR, 1 RTS)
//                 'Q' quit (the flash file is always up to date: writes go straight to it)
//
// Events about USB: "usb-connected" (enumerated), "usb-disconnected <ms>" and
// "usb-reconnect <ms>" (the firmware dropped its pull-up and raised it again, as a
// runtime USB device (machine.USBDevice) or a soft reset after one does: the bridge
// enumerates the device anew, as a host would; <ms> is emulated time). With
// --miss-reconnects N the host misses the next N of those re-connects, as a host whose
// USB does not come back as the data link: "usb-missed <ms>", no enumeration, and what
// the host writes meanwhile goes nowhere; the re-connect after one it missed (the
// firmware's soft reset bringing its built-in CDC back) it sees again.
//
// rp2040js 1.4.1 runs this firmware only once six gaps are filled; each one is marked
// "gap N" below (see ../../../shared/pico/README.md for the facts). The library itself is
// not patched: peripherals are replaced or wrapped on the RP2040 object.
import fs from 'node:fs';
import { RP2040, USBCDC } from 'rp2040js';

// The library's clock class (not exported by name): the default clock of an RP2040.
const SimulationClock = new RP2040().clock.constructor;

// stdout carries the frames: nothing else may print there (the library logs with console.*)
if (!process.env.QFOTA_PICO_DEBUG) {
  for (const k of ['log', 'info', 'warn', 'debug', 'error']) console[k] = () => {};
} else {
  for (const k of ['log', 'info', 'warn', 'debug']) console[k] = (...a) => process.stderr.write(a.join(' ') + '\n');
}

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
if (!args.firmware || !args.bootrom) {
  process.stderr.write('usage: bridge.mjs --firmware FW.uf2 --bootrom BOOTROM.bin [--flash FILE]\n');
  process.exit(2);
}

const FLASH_SIZE = 2 * 1024 * 1024; // W25Q16JV, as on the Pico
const CTS_WINDOW = Number(args['cts-window'] || 4096); // bytes in flight before CTS holds

// ---- output framing -------------------------------------------------------------------
const outQueue = [];
let outScheduled = false;
function send(type, payload) {
  const head = Buffer.alloc(5);
  head[0] = type.charCodeAt(0);
  head.writeUInt32BE(payload.length, 1);
  outQueue.push(head, Buffer.from(payload));
  if (!outScheduled) {
    outScheduled = true;
    setImmediate(flushOut);
  }
}
function flushOut() {
  outScheduled = false;
  if (outQueue.length) process.stdout.write(Buffer.concat(outQueue.splice(0)));
}
const event = (text) => send('E', Buffer.from(text));

// ---- flash: the backing file is written through on every program/erase ----------------
const uf2 = fs.readFileSync(args.firmware);
const bootrom = fs.readFileSync(args.bootrom);
const flashImage = new Uint8Array(FLASH_SIZE).fill(0xff);
let flashFd = null;
if (args.flash) {
  if (fs.existsSync(args.flash)) {
    const old = fs.readFileSync(args.flash);
    flashImage.set(old.subarray(0, FLASH_SIZE));
  }
  flashFd = fs.openSync(args.flash, fs.existsSync(args.flash) ? 'r+' : 'w+');
}
// The firmware is (re)flashed on every start, the rest (littlefs) kept.
for (let off = 0; off + 512 <= uf2.length; off += 512) {
  const b = uf2.subarray(off, off + 512);
  if (b.readUInt32LE(0) !== 0x0a324655 || b.readUInt32LE(4) !== 0x9e5d5157) continue;
  const addr = b.readUInt32LE(12);
  const size = b.readUInt32LE(16);
  if (addr >= 0x10000000 && addr + size <= 0x10000000 + FLASH_SIZE)
    flashImage.set(b.subarray(32, 32 + size), addr - 0x10000000);
}
function persist(offset, length) {
  if (flashFd !== null) fs.writeSync(flashFd, flashImage, offset, length, offset);
}
if (flashFd !== null) persist(0, FLASH_SIZE);

// ---- gap 3: a SPI NOR flash (W25Q16JV) behind the SSI ----------------------------------
class NorFlash {
  constructor(mcu) {
    this.mcu = mcu;
    this.wel = false;
    this.end();
  }
  begin() {
    this.active = true;
    this.cmd = -1;
    this.pos = 0;
    this.addr = 0;
  }
  end() {
    if (this.active && this.cmd === 0x02 && this.page !== undefined) persist(this.page, 256);
    this.page = undefined;
    this.active = false;
    this.cmd = -1;
  }
  // one byte in, one byte out
  xfer(b) {
    if (!this.active) return 0xff;
    const m = this.mcu.flash;
    if (this.cmd < 0) {
      this.cmd = b;
      this.pos = 0;
      switch (b) {
        case 0x06:
          this.wel = true;
          break;
        case 0x04:
          this.wel = false;
          break;
        case 0xc7:
        case 0x60:
          if (this.wel) {
            m.fill(0xff, 0, FLASH_SIZE);
            flashImage.fill(0xff);
            persist(0, FLASH_SIZE);
          }
          this.wel = false;
          break;
      }
      return 0xff;
    }
    const p = this.pos++;
    switch (this.cmd) {
      case 0x05:
        return this.wel ? 0x02 : 0x00; // never busy
      case 0x35:
        return 0x02; // QE set
      case 0x9f:
        return [0xef, 0x40, 0x15][p] ?? 0xff;
      case 0x4b:
        return p < 4 ? 0xff : [0xe6, 0x60, 0x58, 0x38, 0x83, 0x1d, 0x22, 0x2a][(p - 4) & 7];
      case 0x03:
      case 0x0b: {
        if (p < 3) {
          this.addr = (this.addr << 8) | b;
          return 0xff;
        }
        if (this.cmd === 0x0b && p === 3) return 0xff; // dummy byte
        const v = m[this.addr & (FLASH_SIZE - 1)];
        this.addr++;
        return v;
      }
      case 0x02: {
        if (p < 3) {
          this.addr = (this.addr << 8) | b;
          if (p === 2) this.addr &= FLASH_SIZE - 1;
          return 0xff;
        }
        if (!this.wel) return 0xff;
        const page = this.addr & ~0xff;
        const a = page | ((this.addr + (p - 3)) & 0xff); // wraps inside the page
        m[a] &= b;
        flashImage[a] = m[a];
        this.page = page;
        return 0xff;
      }
      case 0x20:
      case 0x52:
      case 0xd8: {
        if (p < 3) {
          this.addr = (this.addr << 8) | b;
          if (p === 2 && this.wel) {
            const size = this.cmd === 0x20 ? 4096 : this.cmd === 0x52 ? 32768 : 65536;
            const start = (this.addr & (FLASH_SIZE - 1)) & ~(size - 1);
            m.fill(0xff, start, start + size);
            flashImage.fill(0xff, start, start + size);
            persist(start, size);
            this.wel = false;
          }
        }
        return 0xff;
      }
    }
    return 0xff;
  }
}

// ---- the SSI with the flash on it ---------------------------------------------------------
const SSI_SR = 0x28,
  SSI_DR0 = 0x60,
  SSI_RXFLR = 0x24,
  SSI_TXFLR = 0x20,
  SSI_SSIENR = 0x08;
function wrapSSI(mcu, nor) {
  const ssi = mcu.peripherals[0x18000];
  const rx = [];
  let lastWasRead = true;
  const origRead = ssi.readUint32.bind(ssi);
  const origWrite = ssi.writeUint32.bind(ssi);
  ssi.readUint32 = (offset) => {
    switch (offset) {
      case SSI_DR0:
        lastWasRead = true;
        return rx.length ? rx.shift() : 0;
      case SSI_SR:
        return 0x06 | (rx.length ? 0x08 : 0); // TFNF | TFE | RFNE, never busy
      case SSI_RXFLR:
        return rx.length;
      case SSI_TXFLR:
        return 0;
    }
    return origRead(offset);
  };
  ssi.writeUint32 = (offset, value) => {
    if (offset === SSI_DR0) {
      if (!mcu.csForced) {
        // hardware chip select: a transfer ends once its answer has been read
        if (lastWasRead) {
          nor.end();
          nor.begin();
        }
      }
      lastWasRead = false;
      if (rx.length < 64) rx.push(nor.xfer(value & 0xff));
      else nor.xfer(value & 0xff);
      return;
    }
    if (offset === SSI_SSIENR) {
      rx.length = 0;
      if (!mcu.csForced) nor.end();
      lastWasRead = true;
    }
    origWrite(offset, value);
  };
}

// ---- gap 2: IO_QSPI with CSn overridable; the QSPI pads at their reset values ------------
class IOQSPI {
  constructor(mcu, nor) {
    this.mcu = mcu;
    this.nor = nor;
    this.ctrl = new Uint32Array(6);
    this.rawWriteValue = 0;
  }
  readUint32(offset) {
    const i = offset >> 3;
    if (i < 6 && offset & 4) return this.ctrl[i];
    if (i < 6) return 0;
    return 0;
  }
  writeUint32Atomic(offset, value, atomicType) {
    this.rawWriteValue = value;
    const i = offset >> 3;
    if (i >= 6 || !(offset & 4)) return;
    const cur = this.ctrl[i];
    const v = atomicType === 1 ? cur ^ value : atomicType === 2 ? cur | value : atomicType === 3 ? cur & ~value : value;
    this.ctrl[i] = v;
    if (i === 1) {
      const over = (v >> 8) & 3;
      if (over === 2) {
        this.mcu.csForced = true;
        this.nor.end();
        this.nor.begin();
      } else {
        if (this.mcu.csForced) this.nor.end();
        this.mcu.csForced = over === 3;
      }
    }
  }
  writeUint32(offset, value) {
    this.writeUint32Atomic(offset, value, 0);
  }
}

// ---- gap 1: VREG_AND_CHIP_RESET as plain registers reading 0 -----------------------------
class PlainRegs {
  constructor() {
    this.regs = new Map();
    this.rawWriteValue = 0;
  }
  readUint32(offset) {
    return this.regs.get(offset) ?? 0;
  }
  writeUint32Atomic(offset, value, atomicType) {
    const cur = this.readUint32(offset);
    this.regs.set(offset, atomicType === 1 ? cur ^ value : atomicType === 2 ? cur | value : atomicType === 3 ? cur & ~value : value);
  }
  writeUint32(offset, value) {
    this.writeUint32Atomic(offset, value, 0);
  }
}

// ---- gap 5: an alarm that fired is no longer "scheduled" ---------------------------------
class Clock extends SimulationClock {
  tick(deltaNanos) {
    const target = this.nanosCounter + deltaNanos;
    let alarm = this.nextAlarm;
    while (alarm && alarm.nanos <= target) {
      this.nextAlarm = alarm.next;
      this.nanosCounter = alarm.nanos;
      alarm.scheduled = false;
      alarm.callback();
      alarm = this.nextAlarm;
    }
    this.nanosCounter = target;
  }
}

// ---- UART0: gap 4 (TX FIFO and interrupt), gap 5 (paced RX), the CTS stand-in ----------
// The TX side is a PL011's: a 32-byte FIFO drained at the line rate (--tx-baud: a number,
// or "line" for the baud rate the firmware programmed; default 7812500, the RP2040's
// fastest, clk_peri / 16). TXRIS rises when the FIFO drains through the trigger level of
// UARTIFLS (a transition, as the PL011 TRM says), so the firmware's TX interrupt runs once
// per refill of the FIFO, not once per byte. While the CTS stand-in holds, the FIFO stops
// draining: it fills, UARTFR.TXFF reads 1 and the writer waits, as behind a modem's CTS.
const UARTDR = 0x0,
  UARTFR = 0x18,
  UARTIFLS = 0x34,
  TXINTR = 1 << 5,
  TXFF = 1 << 5,
  TXFE = 1 << 7,
  BUSY = 1 << 3,
  CTSEN = 1 << 15,
  TX_FIFO = 32;
const TX_BAUD = args['tx-baud'] || '7812500';
// held: reads of UARTFR that found TXFF while the CTS stand-in held the line
const uartHost = { rx: [], inFlight: 0, txTotal: 0, ackTotal: 0, held: 0 };
// emulated ns while the TX FIFO held bytes (the line busy), and how much of it the core ran
const cpu = { txNs: 0, txBusyNs: 0, txIrqs: 0 };
let txActive = () => false;
let iflsOf = () => 0;
function wireUart(mcu, clock) {
  const u = mcu.uart[0];
  const fifo = [];
  let ifls = 0x12; // reset value: both trigger levels at 1/2
  const ctsHolding = () => !!(u.ctrlRegister & CTSEN) && uartHost.inFlight >= CTS_WINDOW;
  const trigger = () => [4, 8, 16, 24, 28][ifls & 7] ?? 16;
  const byteNs = () => {
    const baud = TX_BAUD === 'line' ? (u.baudDivider ? u.baudRate : 115200) : Number(TX_BAUD);
    return Math.max(1, Math.round(1e10 / baud)); // 10 bits a character
  };
  txActive = () => fifo.length > 0;
  iflsOf = () => ifls;
  u.checkInterrupts = function () {
    this.rp2040.setInterrupt(this.irq, !!(this.interruptStatus & this.interruptMask));
  };
  Object.defineProperty(u, 'flags', {
    get() {
      const full = fifo.length >= TX_FIFO;
      if (full && ctsHolding()) uartHost.held++;
      return (
        (this.rxFIFO.full ? 1 << 6 : 0) |
        (this.rxFIFO.empty ? 1 << 4 : 0) |
        (full ? TXFF : 0) |
        (fifo.length ? BUSY : TXFE)
      );
    },
  });
  const txAlarm = clock.createAlarm(() => {
    if (!fifo.length || ctsHolding()) return; // held: ctsReleased() starts it again
    const before = fifo.length;
    txBuf.push(fifo.shift());
    uartHost.inFlight++;
    uartHost.txTotal++;
    if (txBuf.length >= 4096) flushUart();
    const level = trigger();
    if (before > level && fifo.length <= level) {
      u.interruptStatus |= TXINTR; // drained through the trigger level
      cpu.txIrqs++;
      u.checkInterrupts();
    }
    if (fifo.length) txAlarm.schedule(byteNs());
  });
  const origRead = u.readUint32.bind(u);
  u.readUint32 = (offset) => (offset === UARTIFLS ? ifls : origRead(offset));
  const origWrite = u.writeUint32.bind(u);
  u.writeUint32 = (offset, value) => {
    if (offset === UARTDR) {
      if (fifo.length >= TX_FIFO) return; // a full FIFO drops the byte, as a PL011's does
      fifo.push(value & 0xff);
      if (!txAlarm.scheduled && !ctsHolding()) txAlarm.schedule(byteNs());
      return;
    }
    if (offset === UARTIFLS) {
      ifls = value & 0x3f;
      return;
    }
    origWrite(offset, value);
  };
  u.onBaudRateChange = (baud) => event('baud ' + baud);
  // RX paced at the programmed baud rate, never into a full FIFO
  const rxAlarm = clock.createAlarm(() => {
    if (uartHost.rx.length && !u.rxFIFO.full) u.feedByte(uartHost.rx.shift());
    armRx();
  });
  function armRx() {
    if (!uartHost.rx.length || rxAlarm.scheduled) return;
    const baud = u.baudDivider ? u.baudRate : 115200;
    rxAlarm.schedule(Math.round(1e10 / baud)); // 10 bits a character
  }
  uartHost.kick = armRx;
  uartHost.ctsReleased = () => {
    if (fifo.length && !txAlarm.scheduled && !ctsHolding()) txAlarm.schedule(byteNs());
  };
}
let txBuf = [];
function flushUart() {
  if (txBuf.length) {
    send('U', Uint8Array.from(txBuf));
    txBuf = [];
  }
}

// ---- USB CDC: hold (NAK) the OUT endpoint while the host has nothing to send ------------
const replIn = []; // Buffers from the host
let cdc = null;
let usbReady = false; // enumerated: a class request may go to the device
let pendingRead = null;
let missReconnects = Number(args['miss-reconnects'] || 0);
let missed = false; // the host missed the last re-connect: it sees no device
function wireUsb(mcu) {
  missed = false;
  newHost(mcu);
  // A runtime USB device (machine.USBDevice) disconnects and re-connects its pull-up for
  // the host to see it anew: re-enumerate, as a host does (rp2040js enumerates only when
  // the controller is first enabled).
  const usb = mcu.usbCtrl;
  const sieWrite = usb.handleSieCtrlWrite.bind(usb);
  let pulledUp = false;
  let dropped = false;
  usb.handleSieCtrlWrite = (value) => {
    const up = !!(value & (1 << 16)); // SIE_CTRL.PULLUP_EN
    sieWrite(value);
    if (pulledUp && !up) {
      dropped = true;
      usbReady = false;
      pendingRead = null;
      event('usb-disconnected ' + Math.round(clock.nanos / 1e6));
    } else if (!pulledUp && up && dropped) {
      dropped = false;
      if (missReconnects > 0 && !missed) {
        missReconnects--;
        missed = true;
        replIn.length = 0;
        // no host behind the device: nothing enumerates it, nothing reads or writes it
        usb.onUSBEnabled = usb.onResetReceived = usb.onEndpointWrite = usb.onEndpointRead = undefined;
        event('usb-missed ' + Math.round(clock.nanos / 1e6));
      } else {
        missed = false;
        event('usb-reconnect ' + Math.round(clock.nanos / 1e6));
        newHost(mcu);
        usb.resetDevice();
      }
    }
    pulledUp = up;
  };
}
function newHost(mcu) {
  cdc = new USBCDC(mcu.usbCtrl);
  const usb = mcu.usbCtrl;
  usbReady = false;
  cdc.onDeviceConnected = () => {
    usbReady = true;
    event('usb-connected');
  };
  cdc.onSerialData = (buf) => send('R', buf);
  pendingRead = null;
  usb.onEndpointRead = (endpoint, size) => {
    if (endpoint !== cdc.outEndpoint) return;
    pendingRead = { endpoint, size };
    serveRead();
  };
}
function serveRead() {
  if (!pendingRead || !replIn.length || !mcu) return;
  const { endpoint, size } = pendingRead;
  pendingRead = null;
  const chunk = Buffer.concat(replIn.splice(0));
  const take = chunk.subarray(0, size);
  if (chunk.length > size) replIn.push(chunk.subarray(size));
  mcu.usbCtrl.endpointReadDone(endpoint, new Uint8Array(take));
}

// ---- the chip, and gap 6: a watchdog reset builds a fresh one -----------------------------
let mcu = null;
let clock = null;
let resetPending = null;
let bootCount = 0;
function boot(reason) {
  clock = new Clock();
  mcu = new RP2040(clock);
  mcu.logger = { debug() {}, info() {}, warn() {}, error() {} };
  mcu.loadBootrom(new Uint32Array(Uint8Array.from(bootrom).buffer));
  mcu.flash.set(flashImage); // reset() blanked it
  const nor = new NorFlash(mcu);
  mcu.csForced = false;
  mcu.peripherals[0x40064] = new PlainRegs();
  mcu.peripherals[0x40018] = new IOQSPI(mcu, nor);
  // QSPI pads: RP2040 reset values (input enabled; SS pulled up)
  const padReset = [0x56, 0x5a, 0x52, 0x52, 0x52, 0x52];
  mcu.qspi.forEach((pin, i) => {
    pin.padValue = padReset[i];
  });
  // CSn reads high (BOOTSEL not pressed) unless the firmware drives it low
  const sioRead = mcu.sio.readUint32.bind(mcu.sio);
  mcu.sio.readUint32 = (offset) => {
    if (offset === 0x008) {
      const over = (mcu.peripherals[0x40018].ctrl[1] >> 8) & 3;
      return 0x3d | (over === 2 ? 0 : 0x02);
    }
    return sioRead(offset);
  };
  wrapSSI(mcu, nor);
  wireUart(mcu, clock);
  wireUsb(mcu);
  const wd = mcu.peripherals[0x40058];
  if (reason === 'watchdog') wd.reason = 2; // FORCE: machine.reset_cause() == WDT_RESET
  wd.onWatchdogTrigger = () => {
    resetPending = 'watchdog';
  };
  bootCount++;
  event((bootCount === 1 ? 'ready ' : 'reset ') + reason);
}

// ---- host input ---------------------------------------------------------------------------
let inBuf = Buffer.alloc(0);
let quitting = false;
process.stdin.on('data', (data) => {
  inBuf = inBuf.length ? Buffer.concat([inBuf, data]) : data;
  while (inBuf.length >= 5) {
    const len = inBuf.readUInt32BE(1);
    if (inBuf.length < 5 + len) break;
    const type = String.fromCharCode(inBuf[0]);
    const payload = inBuf.subarray(5, 5 + len);
    inBuf = inBuf.subarray(5 + len);
    if (type === 'R') {
      if (missed) continue; // the host sees no port to write to
      replIn.push(Buffer.from(payload));
      serveRead();
    } else if (type === 'U') {
      for (const b of payload) uartHost.rx.push(b);
      uartHost.kick?.();
    } else if (type === 'A') {
      const n = payload.readUInt32BE(0);
      uartHost.inFlight = Math.max(0, uartHost.inFlight - n);
      uartHost.ackTotal += n;
      uartHost.ctsReleased?.();
    } else if (type === 'L') {
      // SET_CONTROL_LINE_STATE to interface 0 (the CDC's), as a host sends it on open/close
      if (usbReady) mcu.usbCtrl.sendSetupPacket(Uint8Array.from([0x21, 0x22, payload[0], 0, 0, 0, 0, 0]));
    } else if (type === 'Q') {
      quit();
    }
  }
  wake();
});
process.stdin.on('end', quit);
function quit() {
  if (quitting) return;
  quitting = true;
  flushUart();
  event(`stats uart_tx=${uartHost.txTotal} cts_held_reads=${uartHost.held} emulated_ms=${Math.round(clock.nanos / 1e6)} tx_ns=${Math.round(cpu.txNs)} tx_busy_ns=${Math.round(cpu.txBusyNs)} tx_irqs=${cpu.txIrqs} ifls=${iflsOf()}`);
  flushOut();
  if (flashFd !== null) fs.closeSync(flashFd);
  process.stdout.write('', () => process.exit(0));
}

// ---- the run loop: busy code as fast as we can, idle time follows the wall clock ----------
const CYCLE_NS = 8; // 125 MHz
let timer = null;
let idleWall = 0;
let idleEmu = 0;
function wake() {
  if (timer !== null) {
    clearTimeout(timer);
    timer = null;
    setImmediate(run);
  }
}
function run() {
  timer = null;
  if (quitting) return;
  const core = mcu.core;
  const sliceEnd = performance.now() + 20;
  for (;;) {
    if (resetPending) {
      const reason = resetPending;
      resetPending = null;
      flushUart();
      boot(reason);
      continue;
    }
    if (core.waiting) {
      // asleep (WFI/WFE): emulated time follows the wall clock until the next alarm
      const now = performance.now();
      if (!idleWall) {
        idleWall = now;
        idleEmu = clock.nanos;
      }
      const emuTarget = idleEmu + (now - idleWall) * 1e6;
      const next = clock.nextAlarm ? clock.nextAlarm.nanos : Infinity;
      const tx = txActive();
      if (next <= emuTarget) {
        if (tx) cpu.txNs += next - clock.nanos;
        clock.tick(next - clock.nanos);
        continue;
      }
      if (tx) cpu.txNs += Math.max(0, emuTarget - clock.nanos);
      clock.tick(Math.max(0, emuTarget - clock.nanos));
      flushUart();
      const waitMs = Math.min(20, Math.max(0, (next - clock.nanos) / 1e6));
      timer = setTimeout(run, waitMs);
      return;
    }
    idleWall = 0;
    for (let i = 0; i < 20000 && !core.waiting; i++) {
      const ns = core.executeInstruction() * CYCLE_NS;
      if (txActive()) {
        cpu.txNs += ns;
        cpu.txBusyNs += ns;
      }
      clock.tick(ns);
    }
    if (performance.now() > sliceEnd) break;
  }
  flushUart();
  timer = setTimeout(run, 0);
}

boot('power-on');
run();
