/// Progress of the store's long operations (verify, rebuild, export, migration, replay), for
/// a display such as `tally`'s progress bar. An operation calls its handler with the phase it
/// is in and how far through it is, from the thread that called the operation: a few times
/// per chunk of work (thousands of events), never per event. A nil handler costs one branch.
public typealias ProgressHandler = (_ phase: ProgressPhase, _ done: UInt64, _ total: UInt64) ->
  Void

/// What a progress count counts.
public enum ProgressUnit: String, Sendable {
  case events, bytes, lines, tables
}

/// One phase of a long operation: its label and unit. A handler's `total` is 0 when the
/// phase's size is not known in advance.
public struct ProgressPhase: Equatable, Sendable {
  public var label: String
  public var unit: ProgressUnit

  public init(_ label: String, _ unit: ProgressUnit) {
    self.label = label
    self.unit = unit
  }

  /// `verify`: the journal, the LMDB log and its hashes walked in step (frames, leaf and
  /// chain hashes), each event decoded and replayed.
  public static let verifyLog = ProgressPhase("verify: log and chain", .events)
  /// `verify`: the stored projections compared with the replay, table by table.
  public static let verifyProjections = ProgressPhase("verify: projections", .tables)
  /// `verify`: every Merkle tree node recomputed from the leaves.
  public static let verifyTree = ProgressPhase("verify: tree", .events)
  /// `rebuild`: every projection recomputed from the journal.
  public static let rebuild = ProgressPhase("rebuild", .events)
  /// `export`: the events and their hashes written.
  public static let export = ProgressPhase("export", .events)
  /// Opening a format 1–3 directory: its LMDB log copied into a new journal.
  public static let migrate = ProgressPhase("migrate: log to journal", .events)
  /// Opening read-write: the journal's records past the projections' head applied.
  public static let replay = ProgressPhase("replay journal", .events)
}

/// When a progress display redraws: at most once per `intervalNanos`, and cheap when called
/// far more often than that. Every call costs a decrement and a compare; only one call in
/// `stride` reads the clock, and `stride` adapts (doubling while the clock is read more
/// often than `checksPerInterval` times per interval, halving when it is read less often)
/// so the clock is read about that many times per interval whatever the call rate.
public struct ProgressThrottle: Sendable {
  /// About ten redraws a second: smooth to a reader, negligible for the operation.
  public static let intervalNanos: Int64 = 100_000_000
  /// Clock reads per interval the stride aims at: a redraw is then late by at most about
  /// an eighth of the interval.
  static let checksPerInterval: Int64 = 8
  /// Calls between clock reads at most: at a million calls a second, a clock read every
  /// millisecond, still well inside the interval.
  public static let strideMax: UInt32 = 1024

  public private(set) var stride: UInt32 = 1
  var countdown: UInt32 = 1
  var lastCheckNanos: Int64?
  var nextDrawNanos: Int64 = .min

  public init() {}

  /// The cheap part of every call: whether the clock should be read now (then call `due`).
  @inline(__always)
  public mutating func tick() -> Bool {
    countdown &-= 1
    return countdown == 0
  }

  /// Called when `tick` returned true, with the clock's reading: whether to redraw now. The
  /// first call always redraws.
  public mutating func due(nowNanos: Int64) -> Bool {
    if let last = lastCheckNanos {
      let gap = nowNanos - last
      let target = Self.intervalNanos / Self.checksPerInterval
      if gap < target / 2 {
        stride = min(stride * 2, Self.strideMax)
      } else if gap > target * 2 && stride > 1 {
        stride /= 2
      }
    }
    lastCheckNanos = nowNanos
    countdown = stride
    guard nowNanos >= nextDrawNanos else { return false }
    nextDrawNanos = nowNanos + Self.intervalNanos
    return true
  }

  /// The next call's `tick` reads the clock and its `due` redraws (a new phase starts).
  public mutating func force() {
    countdown = 1
    nextDrawNanos = .min
  }
}

/// The text of a progress line, from the figures alone (no terminal, no clock): label, a
/// bar, done/total, percent, rate and time left. Integer arithmetic throughout.
public enum ProgressLine {
  /// Characters between the bar's brackets at most.
  public static let barWidthMax = 24
  /// A narrower bar says too little: below this the bar is left out.
  static let barWidthMin = 6

  /// `label [#####---] done/total  pct%  rate unit/s  ETA m:ss`, fitted into `columns`
  /// − 1 characters by narrowing the bar (left out when too narrow: the figures matter
  /// more); without a bar, percent and ETA when `total` is 0 (unknown). `done > total` shows
  /// a full bar, 100% and no time left. The rate needs some elapsed time and the ETA
  /// something done too; until then they read `-`.
  public static func render(
    label: String, unit: ProgressUnit, done: UInt64, total: UInt64, elapsedNanos: Int64,
    columns: Int = 80
  ) -> String {
    let rate: UInt64? =
      elapsedNanos > 0
      ? UInt64(clamping: UInt128(done) * 1_000_000_000 / UInt128(UInt64(elapsedNanos))) : nil
    let rateText = rate.map { "\(quantity($0, unit))/s" } ?? "- \(unit.rawValue)/s"
    guard total > 0 else {
      return "\(label)  \(quantity(done, unit))  \(rateText)"
    }
    let shown = min(done, total)
    let percent = UInt128(shown) * 100 / UInt128(total)
    let left = total - shown
    let eta: String
    if left == 0 {
      eta = "0:00"
    } else if done > 0, elapsedNanos > 0 {
      // left × elapsed / done, rounded up to whole seconds.
      let nanos = UInt128(left) * UInt128(UInt64(elapsedNanos)) / UInt128(done)
      eta = duration(seconds: (nanos + 999_999_999) / 1_000_000_000)
    } else {
      eta = "-"
    }
    let figures = "\(fraction(done, total, unit))  \(percent)%  \(rateText)  ETA \(eta)"
    // label, space, [bar], space, figures: one column spare.
    let width = min(barWidthMax, columns - 1 - label.count - figures.count - 4)
    guard width >= barWidthMin else { return "\(label) \(figures)" }
    let filled = Int(UInt128(shown) * UInt128(width) / UInt128(total))
    let bar =
      "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
      + "]"
    return "\(label) \(bar) \(figures)"
  }

  /// `12345 events`, or bytes in MiB with one decimal (`3.2 MiB`).
  static func quantity(_ n: UInt64, _ unit: ProgressUnit) -> String {
    unit == .bytes ? "\(mebibytes(n)) MiB" : "\(n) \(unit.rawValue)"
  }

  /// `123/456` (the rate names the unit), or `1.5/40.0 MiB`.
  static func fraction(_ done: UInt64, _ total: UInt64, _ unit: ProgressUnit) -> String {
    unit == .bytes ? "\(mebibytes(done))/\(mebibytes(total)) MiB" : "\(done)/\(total)"
  }

  /// Bytes as MiB with one decimal, rounded down.
  static func mebibytes(_ n: UInt64) -> String {
    let tenths = UInt128(n) * 10 / (1 << 20)
    return "\(tenths / 10).\(tenths % 10)"
  }

  /// `m:ss` under an hour, `h:mm:ss` under 100 hours, else `>99h`.
  static func duration(seconds: UInt128) -> String {
    if seconds >= 100 * 3600 { return ">99h" }
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60)
    func two(_ v: UInt128) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return h > 0 ? "\(h):\(two(m)):\(two(s))" : "\(m):\(two(s))"
  }
}
