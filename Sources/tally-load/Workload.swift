/// SplitMix64: a tiny, fast generator, plenty for picking accounts and amounts. Seeded, so
/// a run id reproduces the same sequence of transfers. Not for anything secret.
struct SplitMix64 {
  private var state: UInt64

  init(seed: UInt64) {
    state = seed
  }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in `0..<bound` by multiply-high (Lemire), without division on the hot path.
  /// The bias is below 2^-40 for the bounds used here, irrelevant for load.
  mutating func below(_ bound: Int) -> Int {
    precondition(bound > 0)
    return Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(bound)).high)
  }
}

/// FNV-1a, to turn a run id into a seed.
func fnv1a(_ text: String) -> UInt64 {
  var hash: UInt64 = 0xCBF2_9CE4_8422_2325
  for byte in text.utf8 {
    hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
  }
  return hash
}

/// The name of load account `index`.
func accountName(_ index: Int) -> String {
  "load-\(index)"
}

/// The `ACCOUNT.OPEN` body of load account `index`: USD, platform partner, normal debit and
/// no overdraft flag, so random transfers between load accounts never fail for funds.
func accountOpenBody(_ index: Int) -> String {
  #"{"account":"load-\#(index)","currency":"USD","partner":"platform","normal":"debit"}"#
}

/// Builds the requests of one worker: random 2-leg USD transfers between load accounts.
///
/// Request text is built by interpolation rather than through `JSONValue`: every part is
/// plain ASCII chosen here (ids, account names, digit strings), and the generator shares the
/// machine's cores with the server under test, so it must stay cheap.
struct EntryGenerator {
  let runID: String
  let connection: Int
  /// Entry ids are `<run>-<connection>-<counter>`; the workers of one connection interleave
  /// their counters (slot, slot + stride, …) so ids never collide within a run.
  let slot: Int
  let stride: Int
  let accounts: Int
  /// Percentage (0…100) of entries with one leg on account 0, the hot account.
  let hotPercent: Int
  let entriesPerRequest: Int
  private var random: SplitMix64
  private var sequence = 0

  init(
    runID: String, connection: Int, slot: Int, stride: Int, accounts: Int, hotPercent: Int,
    entriesPerRequest: Int
  ) {
    self.runID = runID
    self.connection = connection
    self.slot = slot
    self.stride = stride
    self.accounts = accounts
    self.hotPercent = hotPercent
    self.entriesPerRequest = entriesPerRequest
    let worker = UInt64(truncatingIfNeeded: connection) << 20 | UInt64(truncatingIfNeeded: slot)
    random = SplitMix64(seed: fnv1a(runID) ^ (worker &* 0xD6E8_FEB8_6659_FD93))
  }

  /// The next request: `ENTRY.POST` for one entry per request, else `ENTRY.BATCH`.
  mutating func nextRequest() -> (verb: String, body: String) {
    if entriesPerRequest == 1 {
      var body = ""
      body.reserveCapacity(200)
      appendEntry(to: &body)
      return ("ENTRY.POST", body)
    }
    var body = #"{"entries":["#
    body.reserveCapacity(16 + entriesPerRequest * 200)
    for position in 0..<entriesPerRequest {
      if position > 0 { body.append(",") }
      appendEntry(to: &body)
    }
    body.append("]}")
    return ("ENTRY.BATCH", body)
  }

  /// The two accounts of the next transfer, debit first; always distinct.
  mutating func nextPair() -> (debit: Int, credit: Int) {
    if hotPercent > 0 && random.below(100) < hotPercent {
      let other = 1 + random.below(accounts - 1)
      return random.next() & 1 == 0 ? (0, other) : (other, 0)
    }
    let first = random.below(accounts)
    var second = random.below(accounts - 1)
    if second >= first { second += 1 }
    return (first, second)
  }

  private mutating func appendEntry(to body: inout String) {
    let id = "\(runID)-\(connection)-\(sequence * stride + slot)"
    sequence += 1
    let (debit, credit) = nextPair()
    let amount = 1 + random.below(10_000)
    body.append(
      #"{"id":"\#(id)","legs":[{"account":"load-\#(debit)","side":"debit","amount":"\#(amount)"},"#
        + #"{"account":"load-\#(credit)","side":"credit","amount":"\#(amount)"}],"currency":"USD"}"#
    )
  }
}
