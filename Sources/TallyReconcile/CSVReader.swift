/// A strict RFC 4180 record reader over UTF-8 bytes (already validated): fields separated by
/// commas, records by CRLF or LF; a field in double quotes may hold commas, line breaks and
/// doubled quotes (`""`). Line breaks inside quotes are read as LF. Every record knows the
/// physical line it starts on.
///
/// Refused (MALFORMED): a quote inside an unquoted field, anything but a comma or a line break
/// after a closing quote, a CR not followed by LF, an empty line followed by more records.
/// A quote never closed is TRUNCATED. Empty lines at the end are ignored.
struct CSVReader {
  struct Record {
    /// Physical line (1-based) where the record starts.
    var line: Int
    var fields: [String]
  }

  private let bytes: ArraySlice<UInt8>
  private var i: Int
  private var line = 1
  /// The line of an empty line seen and not yet known to be trailing.
  private var pendingBlankLine: Int?

  init(_ bytes: ArraySlice<UInt8>) {
    self.bytes = bytes
    self.i = bytes.startIndex
  }

  private static let quote = UInt8(ascii: "\"")
  private static let comma = UInt8(ascii: ",")
  private static let cr = UInt8(ascii: "\r")
  private static let lf = UInt8(ascii: "\n")

  /// The next record, or nil at the end of the input.
  mutating func next() throws(StatementError) -> Record? {
    while true {
      if i == bytes.endIndex { return nil }
      let start = line
      if isBlankLine() {
        pendingBlankLine = pendingBlankLine ?? start
        continue
      }
      if let blank = pendingBlankLine {
        throw StatementError(
          code: StatementError.malformed, location: "line \(blank)",
          message: "an empty line before a record")
      }
      return try record(startLine: start)
    }
  }

  /// Consumes a line holding only spaces and tabs (and its line break), if the next line is
  /// one.
  private mutating func isBlankLine() -> Bool {
    var j = i
    while j < bytes.endIndex, bytes[j] == 0x20 || bytes[j] == 0x09 { j += 1 }
    if j == bytes.endIndex {
      i = j
      return true
    }
    if bytes[j] == CSVReader.lf {
      i = j + 1
      line += 1
      return true
    }
    if bytes[j] == CSVReader.cr, j + 1 < bytes.endIndex, bytes[j + 1] == CSVReader.lf {
      i = j + 2
      line += 1
      return true
    }
    return false
  }

  private mutating func record(startLine: Int) throws(StatementError) -> Record {
    var fields = [String]()
    while true {
      var field = [UInt8]()
      if i < bytes.endIndex && bytes[i] == CSVReader.quote {
        i += 1
        while true {
          guard i < bytes.endIndex else {
            throw StatementError(
              code: StatementError.truncated, location: "line \(startLine)",
              message: "a quoted field is never closed")
          }
          let c = bytes[i]
          if c == CSVReader.quote {
            if i + 1 < bytes.endIndex && bytes[i + 1] == CSVReader.quote {
              field.append(CSVReader.quote)
              i += 2
              continue
            }
            i += 1
            break
          }
          if c == CSVReader.cr && i + 1 < bytes.endIndex && bytes[i + 1] == CSVReader.lf {
            i += 1
            continue
          }
          if c == CSVReader.lf { line += 1 }
          field.append(c)
          i += 1
        }
        if i < bytes.endIndex && !isDelimiter(bytes[i]) {
          throw StatementError(
            code: StatementError.malformed, location: "line \(startLine)",
            message: "field \(fields.count + 1): text after a closing quote")
        }
      } else {
        while i < bytes.endIndex && !isDelimiter(bytes[i]) {
          if bytes[i] == CSVReader.quote {
            throw StatementError(
              code: StatementError.malformed, location: "line \(startLine)",
              message: "field \(fields.count + 1): a quote inside an unquoted field")
          }
          field.append(bytes[i])
          i += 1
        }
      }
      fields.append(String(decoding: field, as: UTF8.self))
      if i == bytes.endIndex { return Record(line: startLine, fields: fields) }
      let c = bytes[i]
      if c == CSVReader.comma {
        i += 1
        continue
      }
      if c == CSVReader.cr {
        guard i + 1 < bytes.endIndex && bytes[i + 1] == CSVReader.lf else {
          throw StatementError(
            code: StatementError.malformed, location: "line \(line)",
            message: "a carriage return not followed by a line feed")
        }
        i += 1
      }
      i += 1
      line += 1
      return Record(line: startLine, fields: fields)
    }
  }

  private func isDelimiter(_ c: UInt8) -> Bool {
    c == CSVReader.comma || c == CSVReader.lf || c == CSVReader.cr
  }
}
