import Foundation
import Testing

@testable import TallyReconcile

/// docs/RECONCILIATION.md is the contract: its tables must match the code.
@Suite("docs/RECONCILIATION.md")
struct DocsTests {
  static let doc: String = {
    var dir = (#filePath as NSString).deletingLastPathComponent
    while !FileManager.default.fileExists(atPath: dir + "/Package.swift") {
      dir = (dir as NSString).deletingLastPathComponent
    }
    return try! String(contentsOfFile: dir + "/docs/RECONCILIATION.md", encoding: .utf8)
  }()

  /// The rows of the first table after `heading`, as cells without backticks.
  static func table(after heading: String) -> [[String]] {
    let section = doc.components(separatedBy: heading)[1]
    var rows = [[String]]()
    var started = false
    for line in section.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("|") {
        started = true
        let cells = line.split(separator: "|").map {
          $0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "`", with: "")
        }
        if cells.first != "---" { rows.append(cells) }
      } else if started {
        break
      }
    }
    return Array(rows.dropFirst())  // the header row
  }

  @Test("The error table lists exactly StatementError.codes, in order")
  func errorCodes() {
    #expect(Self.table(after: "## Errors").map { $0[0] } == StatementError.codes)
  }

  @Test("The CSV column table lists exactly the names and aliases the parser knows")
  func csvColumns() {
    var documented = [String: CSVStatement.Column]()
    for row in Self.table(after: "## CSV") {
      let column = CSVStatement.Column(rawValue: row[0])
      #expect(column != nil, "\(row[0])")
      documented[row[0]] = column
      for alias in row[2].split(separator: ",") where !alias.isEmpty {
        documented[alias.trimmingCharacters(in: .whitespaces)] = column
      }
    }
    #expect(documented == CSVStatement.names)
  }
}
