/// Splits an MT940 input into messages and tag fields (`:20:` … `:62F:`), with the SWIFT
/// block wrapper (`{1:…}{2:…}{3:…}{4:` … `-}` with an optional `{5:…}` trailer) or without it
/// (plain tag lines, optionally ended by a line `-`). Each field is handed to `MT940Builder`
/// as soon as the next one starts, so the first problem in input order is the one reported.
/// A file may hold several messages (one per day, account or currency): each is a
/// statement, in input order.
enum MT940Statement {
  static func parse(
    _ bytes: ArraySlice<UInt8>, currencies: Currencies, sink: inout LineSink
  ) throws(StatementError) -> [Statement] {
    var builder = MT940Builder(currencies: currencies, sink: sink)
    var reader = MT940Reader()
    var line = 1
    var from = bytes.startIndex
    while from <= bytes.endIndex {
      let to = bytes[from...].firstIndex(of: 0x0A) ?? bytes.endIndex
      var text = bytes[from..<to]
      if text.last == 0x0D { text = text.dropLast() }
      if to == bytes.endIndex && text.isEmpty { break }
      try reader.line(String(decoding: text, as: UTF8.self), number: line, builder: &builder)
      line += 1
      from = to + 1
    }
    try reader.finish(lastLine: max(1, line - 1), builder: &builder)
    sink = builder.sink
    return reader.statements
  }
}

/// One tag and its content: the rest of the tag's line, then its continuation lines.
struct MT940Field {
  var tag: String
  var line: Int
  var lines: [Substring]
}

struct MT940Reader {
  enum State {
    case start
    /// Header blocks read so far (they may span lines until `{4:`).
    case header(text: String, line: Int, lines: Int)
    case body(wrapped: Bool)
    case after
  }

  var state = State.start
  var field: MT940Field?
  /// The messages read so far, in input order.
  var statements: [Statement] = []

  /// How many lines the header blocks `{1:}{2:}{3:}` may take before `{4:`.
  static let headerLinesMax = 4

  mutating func line(_ text: String, number: Int, builder: inout MT940Builder)
    throws(StatementError)
  {
    let location = "line \(number)"
    switch state {
    case .start:
      if Text.trimmed(text[...]).isEmpty { return }
      if text.hasPrefix("{") {
        try builder.startMessage(line: number)
        state = .header(text: "", line: number, lines: 0)
        try line(text, number: number, builder: &builder)
      } else if let (tag, rest) = MT940Reader.tag(text) {
        try builder.startMessage(line: number)
        state = .body(wrapped: false)
        begin(tag, rest, number)
      } else {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "expected a tag line such as :20: or a {1: header block")
      }
    case .header(let soFar, let first, let count):
      let all = soFar + Text.trimmed(text[...])
      if all.hasSuffix("{4:") {
        try MT940Reader.checkHeader(all, line: first)
        state = .body(wrapped: true)
      } else if count + 1 >= MT940Reader.headerLinesMax {
        throw StatementError(
          code: StatementError.malformed, location: "line \(first)",
          message: "header blocks without {4: at the end of a line")
      } else {
        state = .header(text: all, line: first, lines: count + 1)
      }
    case .body(let wrapped):
      let trimmed = Text.trimmed(text[...])
      // Blank lines carry nothing (SWIFT has none); files often end with some.
      if trimmed.isEmpty { return }
      if !wrapped && trimmed.hasPrefix("{1:") {
        // A wrapped message follows a plain one that ended without a `-` line (the field
        // before it, the plain message's last, is complete: text never starts with `{1:`).
        try flush(builder: &builder)
        guard builder.phase == .closed else {
          throw StatementError(
            code: StatementError.malformed, location: location,
            message: "a header block inside a message (before its closing balance)")
        }
        try endMessage(line: number, builder: &builder)
        state = .start
        try line(text, number: number, builder: &builder)
      } else if wrapped ? trimmed.hasPrefix("-}") : trimmed == "-" {
        try flush(builder: &builder)
        try endMessage(line: number, builder: &builder)
        state = .after
        try trailer(trimmed.dropFirst(wrapped ? 2 : 1), number)
      } else if let (tag, rest) = MT940Reader.tag(text) {
        try flush(builder: &builder)
        if tag == "20" && builder.phase == .closed {
          // The next message follows without a `-` line between them.
          try endMessage(line: number, builder: &builder)
          try builder.startMessage(line: number)
        }
        begin(tag, rest, number)
      } else if let f = field, f.tag == "86" || (f.tag == "61" && f.lines.count < 2) {
        // Only :86: (information) and :61: (one line of supplementary details) continue on
        // further lines.
        field!.lines.append(text[...])
      } else if field == nil {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "expected a tag line such as :20:")
      } else {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "text that belongs to no field (only :86: and :61: continue on more lines)")
      }
    case .after:
      let rest = Text.trimmed(text[...])
      if rest.hasPrefix("{1:") || rest.hasPrefix("{2:") || MT940Reader.tag(text) != nil {
        // The next message of the file.
        state = .start
        try line(text, number: number, builder: &builder)
      } else {
        try trailer(rest, number)
      }
    }
  }

  /// Nothing may follow a message but `{5:…}`-style trailer blocks, blank lines and the
  /// next message.
  private func trailer(_ rest: Substring, _ number: Int) throws(StatementError) {
    if rest.isEmpty { return }
    if rest.hasPrefix("{1:") || MT940Reader.tag(String(rest)) != nil {
      throw StatementError(
        code: StatementError.malformed, location: "line \(number)",
        message: "the next message must start on a line of its own")
    }
    if !rest.hasPrefix("{") {
      throw StatementError(
        code: StatementError.malformed, location: "line \(number)",
        message: "text after the end of the message")
    }
  }

  private mutating func begin(_ tag: String, _ rest: Substring, _ number: Int) {
    field = MT940Field(tag: tag, line: number, lines: [rest])
  }

  private mutating func flush(builder: inout MT940Builder) throws(StatementError) {
    if let f = field {
      field = nil
      try builder.field(f)
    }
  }

  /// Ends the current message: it must be complete.
  private mutating func endMessage(line: Int, builder: inout MT940Builder) throws(StatementError) {
    try builder.finishMessage(line: line)
    statements.append(builder.statement())
  }

  mutating func finish(lastLine: Int, builder: inout MT940Builder) throws(StatementError) {
    switch state {
    case .start:
      throw StatementError(
        code: StatementError.truncated, location: "line 1", message: "the input is empty")
    case .header(_, let first, _):
      throw StatementError(
        code: StatementError.truncated, location: "line \(first)",
        message: "header blocks without {4:")
    case .body(let wrapped):
      try flush(builder: &builder)
      try builder.finishMessage(line: lastLine)
      if wrapped {
        throw StatementError(
          code: StatementError.truncated, location: "line \(lastLine)",
          message: "block 4 is not ended by -}")
      }
      statements.append(builder.statement())
    case .after:
      break
    }
  }

  /// `:TAG:rest` where TAG is two digits or letters and an optional letter (`20`, `28C`,
  /// `60F`); SWIFT forbids continuation lines starting with a colon, so these are tags.
  static func tag(_ text: String) -> (String, Substring)? {
    let u = Array(text.utf8.prefix(5))
    guard u.count >= 4, u[0] == 0x3A else { return nil }
    func alnum(_ c: UInt8) -> Bool { (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) }
    guard alnum(u[1]), alnum(u[2]) else { return nil }
    if u[3] == 0x3A {
      return (String(decoding: u[1..<3], as: UTF8.self), text.utf8.dropFirst(4).substring)
    }
    if u.count == 5, u[3] >= 0x41 && u[3] <= 0x5A, u[4] == 0x3A {
      return (String(decoding: u[1..<4], as: UTF8.self), text.utf8.dropFirst(5).substring)
    }
    return nil
  }

  /// `{1:…}{2:…}{3:…}{4:`: balanced blocks; block 2, when present, must name MT940.
  static func checkHeader(_ text: String, line: Int) throws(StatementError) {
    let location = "line \(line)"
    let u = Array(text.utf8)
    var i = 0
    while i < u.count {
      guard u[i] == UInt8(ascii: "{"), i + 2 < u.count, u[i + 2] == UInt8(ascii: ":") else {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "expected a {n: header block")
      }
      let id = u[i + 1]
      if id == UInt8(ascii: "4") {
        guard i + 3 == u.count else {
          throw StatementError(
            code: StatementError.malformed, location: location,
            message: "{4: must end its line")
        }
        return
      }
      if id == UInt8(ascii: "2") {
        let type = String(decoding: u[(i + 3)..<min(u.count, i + 7)], as: UTF8.self)
        if type != "O940" && type != "I940" {
          throw StatementError(
            code: StatementError.unsupported, location: location,
            message: "block 2 names message type \(type.dropFirst()); only MT940 is accepted")
        }
      }
      var depth = 0
      var j = i
      repeat {
        if u[j] == UInt8(ascii: "{") { depth += 1 }
        if u[j] == UInt8(ascii: "}") { depth -= 1 }
        j += 1
      } while depth > 0 && j < u.count
      if depth > 0 {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "header block {\(Character(Unicode.Scalar(id))): is not closed")
      }
      i = j
    }
  }
}

extension Substring.UTF8View {
  fileprivate var substring: Substring { Substring(self) }
}
