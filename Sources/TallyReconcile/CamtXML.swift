import Foundation

#if canImport(FoundationXML)
  import FoundationXML
#endif

/// An element of the camt document, kept only while its `Stmt` child is being read: each
/// direct child of `Stmt` (`Acct`, `Bal`, `Ntry`, …) is built as a small tree, handed to the
/// statement builder when it closes, and dropped, so memory stays bounded by the largest
/// entry rather than the file.
final class XMLNode {
  let name: String
  let attributes: [String: String]
  var text = ""
  var children: [XMLNode] = []

  init(name: String, attributes: [String: String]) {
    self.name = name
    self.attributes = attributes
  }

  func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }
  func children(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }
  /// The descendant along `path` (first match at each step).
  func at(_ path: String...) -> XMLNode? {
    var node: XMLNode? = self
    for name in path { node = node?.child(name) }
    return node
  }
  /// The trimmed text, nil when empty.
  var value: String? { Text.value(text) }
}

/// Reads a camt.053 or camt.054 document with Foundation's SAX parser (libxml2 on Linux) and
/// feeds the children of each `Stmt` (or `Ntfctn`) to a `CamtBuilder` of its own. Only
/// elements in the document's namespace are kept; elements of other namespaces (inside
/// `SplmtryData`, say) are skipped with their content.
final class CamtReader: NSObject, XMLParserDelegate {
  /// `urn:iso:std:iso:20022:tech:xsd:camt.05N.001.NN`, NN from 02 to 13.
  static let namespaceStem = "urn:iso:std:iso:20022:tech:xsd:"
  static let versions = 2...13

  private enum Frame {
    case document
    case body
    case stmt(counts: [String: Int])
    case captured(XMLNode)
    case ignored
  }

  private let message: CamtMessage
  private let currencies: Currencies
  private var sink: LineSink
  private var builder: CamtBuilder?
  private var statements: [Statement] = []
  private var namespace: String?
  private var stack: [Frame] = []
  private var stmtCount = 0
  private var rootClosed = false
  private(set) var error: StatementError?
  private weak var parser: XMLParser?

  /// (line, column) just past the last byte, where libxml2 reports a truncated input.
  private let endPosition: (Int, Int)

  init(
    message: CamtMessage, currencies: Currencies, sink: LineSink, endPosition: (Int, Int)
  ) {
    self.message = message
    self.currencies = currencies
    self.sink = sink
    self.endPosition = endPosition
  }

  /// The namespace prefix of `message` (without the version).
  static func namespacePrefix(_ message: CamtMessage) -> String {
    namespaceStem + (message == .statement ? "camt.053.001." : "camt.054.001.")
  }

  /// Parses `bytes` (valid UTF-8, without BOM) into its statements, in document order.
  static func read(
    _ bytes: ArraySlice<UInt8>, message: CamtMessage, currencies: Currencies,
    sink: inout LineSink
  ) throws(StatementError) -> [Statement] {
    try checkProlog(bytes)
    try checkProcessingInstructions(bytes)
    let reader = CamtReader(
      message: message, currencies: currencies, sink: sink, endPosition: endPosition(bytes))
    // A stream, not `XMLParser(data:)`: given data, swift-corelibs-foundation hands libxml2
    // the whole input as one chunk, and libxml2 refuses chunks over 10 MB ("huge input
    // lookup", error 1) without its XML_PARSE_HUGE option, which XMLParser does not expose.
    // From a stream it reads in small chunks.
    let parser = XMLParser(stream: InputStream(data: Data(bytes)))
    parser.shouldProcessNamespaces = true
    parser.shouldResolveExternalEntities = false
    parser.delegate = reader
    reader.parser = parser
    let ok = parser.parse()
    if let error = reader.error { throw error }
    // libxml2 can stop without telling the delegate; the parser still knows.
    if !ok || parser.parserError != nil {
      throw StatementError(
        code: StatementError.malformed, location: "line \(parser.lineNumber)",
        message: "the XML is not well-formed")
    }
    guard reader.rootClosed else {
      throw StatementError(
        code: StatementError.truncated, location: "line \(parser.lineNumber)",
        message: "the document has no root element or ends inside it")
    }
    guard !reader.statements.isEmpty else {
      throw StatementError(
        code: StatementError.missingField, location: message.body,
        message: "the document has no \(message.item)")
    }
    sink = reader.sink
    return reader.statements
  }

  private func fail(_ e: StatementError) {
    if error == nil { error = e }
    parser?.abortParsing()
  }

  func parser(
    _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
  ) {
    guard error == nil else { return }
    guard let top = stack.last else {
      guard elementName == "Document", let ns = namespaceURI, CamtReader.isCamt(ns, message)
      else {
        let ns = namespaceURI.map { " in namespace \($0)" } ?? " without a namespace"
        return fail(
          StatementError(
            code: StatementError.unsupported, location: elementName,
            message: "the root element is \(elementName)\(ns); expected Document in "
              + "\(CamtReader.namespacePrefix(message))02 … 13 (\(message.name))"))
      }
      namespace = ns
      stack.append(.document)
      return
    }
    let ours = namespaceURI == namespace
    switch top {
    case .document:
      guard ours && elementName == message.body else {
        return fail(
          StatementError(
            code: StatementError.unsupported, location: "Document/\(elementName)",
            message: "expected \(message.body) (a bank-to-customer \(message.name) message)"))
      }
      stack.append(.body)
    case .body:
      guard ours && elementName == message.item else {
        stack.append(.ignored)
        return
      }
      stmtCount += 1
      let root = stmtCount == 1 ? message.item : "\(message.item)[\(stmtCount)]"
      do {
        try sink.startStatement(at: root)
      } catch {
        return fail(error)
      }
      builder = CamtBuilder(currencies: currencies, message: message, root: root, sink: sink)
      stack.append(.stmt(counts: [:]))
    case .stmt(var counts):
      guard ours else {
        stack.append(.ignored)
        return
      }
      counts[elementName, default: 0] += 1
      stack[stack.count - 1] = .stmt(counts: counts)
      stack.append(.captured(XMLNode(name: elementName, attributes: attributeDict)))
    case .captured(let parent):
      guard ours else {
        stack.append(.ignored)
        return
      }
      let node = XMLNode(name: elementName, attributes: attributeDict)
      parent.children.append(node)
      stack.append(.captured(node))
    case .ignored:
      stack.append(.ignored)
    }
  }

  func parser(
    _ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
    qualifiedName qName: String?
  ) {
    guard error == nil, let top = stack.popLast() else { return }
    if stack.isEmpty { rootClosed = true }
    if case .stmt = top, let b = builder {
      // The statement is whole.
      do {
        statements.append(try b.finish())
        sink = b.sink
        builder = nil
      } catch {
        fail(error)
      }
      return
    }
    guard case .captured(let node) = top, case .stmt(let counts) = stack.last else { return }
    do {
      try builder!.stmtChild(node, index: counts[node.name] ?? 1)
    } catch {
      fail(error)
    }
  }

  func parser(_ parser: XMLParser, foundCharacters string: String) {
    guard error == nil, case .captured(let node) = stack.last else { return }
    node.text += string
  }

  func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
    guard error == nil, case .captured(let node) = stack.last else { return }
    node.text += String(decoding: CDATABlock, as: UTF8.self)
  }

  func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) {
    guard error == nil else { return }
    let code = (parseError as NSError).code
    let line = parser.lineNumber
    let column = parser.columnNumber
    // libxml2 reports running out of input as "document end" (5) with elements still open,
    // or as whatever was expected next, at the very end of the input. Once the root element
    // is closed nothing is missing.
    let truncated =
      !rootClosed && ((code == 5 && !stack.isEmpty) || (line, column) == endPosition)
    error = StatementError(
      code: truncated ? StatementError.truncated : StatementError.malformed,
      location: "line \(line)",
      message: truncated
        ? "the XML ends inside an element (column \(column))"
        : "the XML is not well-formed (parser error \(code) at column \(column))")
  }

  static func isCamt(_ ns: String, _ message: CamtMessage) -> Bool {
    let prefix = namespacePrefix(message)
    guard ns.hasPrefix(prefix) else { return false }
    let version = ns.dropFirst(prefix.count)
    guard version.count == 2, let v = Int(version) else { return false }
    return versions.contains(v)
  }

  static func endPosition(_ bytes: ArraySlice<UInt8>) -> (Int, Int) {
    var line = 1
    var column = 1
    for b in bytes {
      if b == 0x0A {
        line += 1
        column = 1
      } else if b & 0xC0 != 0x80 {
        column += 1
      }
    }
    return (line, column)
  }

  /// Before the root element: refuses a DTD (no entity expansion, no external fetches) and a
  /// declared encoding other than UTF-8 (the bytes were validated as UTF-8).
  static func checkProlog(_ b: ArraySlice<UInt8>) throws(StatementError) {
    var i = b.startIndex
    var line = 1
    func starts(_ s: String) -> Bool { b[i...].starts(with: s.utf8) }
    func skip(past end: String) -> Bool {
      let e = Array(end.utf8)
      while i < b.endIndex {
        if b[i...].starts(with: e) {
          i += e.count
          return true
        }
        if b[i] == 0x0A { line += 1 }
        i += 1
      }
      return false
    }
    while i < b.endIndex {
      let c = b[i]
      if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A {
        if c == 0x0A { line += 1 }
        i += 1
      } else if starts("<?xml ") || starts("<?xml\t") || starts("<?xml\n") {
        let declLine = line
        let from = i
        guard skip(past: "?>") else { return }
        let decl = String(decoding: b[from..<i], as: UTF8.self)
        if let enc = declaredEncoding(decl), enc.lowercased() != "utf-8" {
          throw StatementError(
            code: StatementError.unsupported, location: "line \(declLine)",
            message: "the document declares encoding \(enc); only UTF-8 is accepted")
        }
      } else if starts("<?") {
        guard skip(past: "?>") else { return }
      } else if starts("<!--") {
        guard skip(past: "-->") else { return }
      } else if starts("<!DOCTYPE") {
        throw StatementError(
          code: StatementError.unsupported, location: "line \(line)",
          message: "a document type declaration (DTD) is not accepted")
      } else {
        return
      }
    }
  }

  /// Refuses a processing instruction without data (`<?name?>`, `<?name ?>`) anywhere in
  /// the input. For one, libxml2 passes a NULL data pointer, and swift-corelibs-foundation's
  /// XMLParser reads it as a C string before asking the delegate: the process crashes
  /// (found by fuzzing). A camt document has no use for processing instructions; this one
  /// is refused even inside a comment or CDATA section, where it would be harmless.
  static func checkProcessingInstructions(_ b: ArraySlice<UInt8>) throws(StatementError) {
    func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0D || c == 0x0A }
    var line = 1
    var i = b.startIndex
    while i < b.endIndex {
      if b[i] == 0x0A { line += 1 }
      guard b[i] == UInt8(ascii: "<"), i + 1 < b.endIndex, b[i + 1] == UInt8(ascii: "?") else {
        i += 1
        continue
      }
      // The target: every byte up to a blank or `?` (libxml2 skips blanks after it).
      var j = i + 2
      while j < b.endIndex, !isSpace(b[j]), b[j] != UInt8(ascii: "?") { j += 1 }
      while j < b.endIndex, isSpace(b[j]) { j += 1 }
      if j + 1 < b.endIndex, b[j] == UInt8(ascii: "?"), b[j + 1] == UInt8(ascii: ">") {
        throw StatementError(
          code: StatementError.unsupported, location: "line \(line)",
          message: "a processing instruction without data (<?name?>) is not accepted")
      }
      i += 2
    }
  }

  static func declaredEncoding(_ decl: String) -> String? {
    guard let r = decl.range(of: "encoding") else { return nil }
    var rest = decl[r.upperBound...].drop { $0 == " " || $0 == "\t" || $0 == "\n" }
    guard rest.first == "=" else { return nil }
    rest = rest.dropFirst().drop { $0 == " " || $0 == "\t" || $0 == "\n" }
    guard let quote = rest.first, quote == "\"" || quote == "'" else { return nil }
    return String(rest.dropFirst().prefix { $0 != quote })
  }
}
