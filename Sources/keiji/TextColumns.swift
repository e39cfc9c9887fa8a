/// A table as `systemctl list-timers` prints one: a header of upper-case names, then rows, each column
/// left-aligned and as wide as its widest cell, two spaces between columns, no trailing spaces.
struct TextColumns {
    let header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    /// Widths are counted in characters, once a cell (`keiji task --list` prints seven a task).
    func lines() -> [String] {
        let all = [header] + rows
        let counts = all.map { $0.map(\.count) }
        let widths = header.indices.map { column in counts.map { $0[column] }.max() ?? 0 }
        return zip(all, counts).map { cells, counts in
            var line = ""
            line.reserveCapacity(widths.reduce(2 * widths.count, +))
            for column in cells.indices {
                if column > 0 { line += "  " }
                line += cells[column]
                if column < cells.count - 1 { line += String(repeating: " ", count: widths[column] - counts[column]) }
            }
            while line.utf8.last == UInt8(ascii: " ") { line.removeLast() }
            return line
        }
    }
}
