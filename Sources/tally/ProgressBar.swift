import Glibc
import TallyStore

/// A progress line on stderr for the long commands: label, bar, done/total, percent, rate and
/// ETA (`ProgressLine`), redrawn in place at most about ten times a second
/// (`ProgressThrottle`). Only when stderr is a terminal whose TERM is not `dumb`, and neither
/// `--no-progress` nor `TALLY_NO_PROGRESS=1` is given: piped or redirected output gets no
/// byte of it. The line is cleared when the command ends, and before anything else is written
/// to stderr (an error message), so it never mixes with output.
final class ProgressBar {
  private var throttle = ProgressThrottle()
  private var phase: ProgressPhase?
  private var phaseStartNanos: Int64 = 0
  /// Whether a line is on the screen now.
  private var drawn = false

  /// Whether progress may be shown: a real terminal on stderr and no opt-out.
  static func enabled(noProgress: Bool) -> Bool {
    if noProgress || GlobalOptions.env("TALLY_NO_PROGRESS") == "1" { return false }
    if GlobalOptions.env("TERM") == "dumb" { return false }
    return isatty(2) == 1
  }

  /// The handler to give a long operation. Called on every chunk of work; redraws only when
  /// the throttle says so, or when a new phase starts.
  var handler: ProgressHandler {
    { [self] phase, done, total in update(phase, done, total) }
  }

  func update(_ phase: ProgressPhase, _ done: UInt64, _ total: UInt64) {
    if phase != self.phase {
      self.phase = phase
      phaseStartNanos = monotonicNanos()
      throttle.force()
    }
    guard throttle.tick() else { return }
    let now = monotonicNanos()
    guard throttle.due(nowNanos: now) else { return }
    // One column short of the width: a line that fills it would wrap on some terminals.
    let columns = Self.columns()
    let line = ProgressLine.render(
      label: phase.label, unit: phase.unit, done: done, total: total,
      elapsedNanos: now - phaseStartNanos, columns: columns)
    drawn = true
    write("\r" + String(line.prefix(columns - 1)) + "\u{1B}[K")
  }

  /// The terminal's width (80 when it cannot be read).
  static func columns() -> Int {
    var ws = winsize()
    return ioctl(2, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 1 ? Int(ws.ws_col) : 80
  }

  /// Erases the line, if one is drawn.
  func clear() {
    guard drawn else { return }
    drawn = false
    write("\r\u{1B}[K")
  }

  private func write(_ text: String) {
    var s = text
    s.withUTF8 { b in
      var off = 0
      // Bounded: each pass writes at least one byte or stops.
      while off < b.count {
        let n = Glibc.write(2, b.baseAddress! + off, b.count - off)
        if n <= 0 {
          if n < 0 && errno == EINTR { continue }
          return
        }
        off += n
      }
    }
  }
}

/// The progress line on the screen, cleared before any other stderr output. Only the main
/// thread, which runs the command, sets it and draws.
nonisolated(unsafe) var activeProgressBar: ProgressBar?

extension GlobalOptions {
  /// Runs `body` with a progress handler (nil when progress is off: piped, TERM=dumb,
  /// `--no-progress` or `TALLY_NO_PROGRESS=1`) and clears the line after it, whether it
  /// returns or throws. A long command passes the handler to the store in one line:
  /// `try global.withProgress { p in try ledger.verify(progress: p) }`.
  func withProgress<R, E: Error>(_ body: (ProgressHandler?) throws(E) -> R) throws(E) -> R {
    guard ProgressBar.enabled(noProgress: noProgress) else { return try body(nil) }
    let bar = ProgressBar()
    let outer = activeProgressBar
    activeProgressBar = bar
    defer {
      bar.clear()
      activeProgressBar = outer
    }
    return try body(bar.handler)
  }
}
