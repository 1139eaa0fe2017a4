/// An authorisation hold: pending → captured | released | expired, nothing else.
public enum HoldState: UInt8, Sendable, Equatable, CustomStringConvertible {
  case pending = 0
  case captured = 1
  case released = 2
  case expired = 3

  public var description: String {
    switch self {
    case .pending: "pending"
    case .captured: "captured"
    case .released: "released"
    case .expired: "expired"
    }
  }
}

public struct HoldRecord: Equatable, Sendable {
  public var id: String
  public var legs: [Leg]
  /// Nanoseconds since the Unix epoch; nil when the hold never expires by itself.
  public var deadlineNanos: Int64?
  public var state: HoldState
  public var placedSeq: UInt64
  /// Seq of the capture, release or expiry; 0 while pending.
  public var resolvedSeq: UInt64
  /// Per-leg captured amounts, in leg order; empty unless captured.
  public var capturedMinor: [Int128]

  public init(
    id: String, legs: [Leg], deadlineNanos: Int64?, state: HoldState,
    placedSeq: UInt64, resolvedSeq: UInt64, capturedMinor: [Int128]
  ) {
    self.id = id
    self.legs = legs
    self.deadlineNanos = deadlineNanos
    self.state = state
    self.placedSeq = placedSeq
    self.resolvedSeq = resolvedSeq
    self.capturedMinor = capturedMinor
  }

  /// The one transition out of `pending`. Any other transition is a bug in the caller:
  /// `decide` refuses non-pending holds before an event exists, and replay applies only
  /// events that `decide` produced.
  public mutating func resolve(_ to: HoldState, seq: UInt64, captured: [Int128] = []) {
    precondition(state == .pending, "hold \(id) resolved twice")
    precondition(to != .pending, "hold \(id) resolved to pending")
    state = to
    resolvedSeq = seq
    capturedMinor = captured
  }
}
