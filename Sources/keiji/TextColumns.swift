/// A table as `systemctl list-timers` prints one: a header of upper-case names, then rows, each column
/// left-aligned and as wide as its widest cell, two spaces between columns, no trailing spaces.
struct TextColumns {
    let header: [String]
    var rows: [[String]] = []

    init(_ header: [String]) { self.header = header }

    func lines() -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { cells in
            var line = ""
            for (column, cell) in cells.enumerated() {
                line += (column == 0 ? "" : "  ") + cell + String(repeating: " ", count: widths[column] - cell.count)
            }
            while line.hasSuffix(" ") { line.removeLast() }
            return line
        }
    }
}
