/// A plain-text table: left-aligned first column, right-aligned figures, two spaces between columns.
struct TextTable {
    enum Alignment { case left, right }

    private var header: [String]
    private var alignments: [Alignment]
    private var rows: [[String]] = []

    init(_ header: [String], alignments: [Alignment]) {
        precondition(header.count == alignments.count)
        self.header = header
        self.alignments = alignments
    }

    mutating func add(_ row: [String]) {
        rows.append(row + Array(repeating: "", count: max(0, header.count - row.count)))
    }

    func render(indent: String = "  ") -> String {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            var text = indent
            for (column, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                text += column == 0 ? "" : "  "
                text += alignments[column] == .left ? cell + padding : padding + cell
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
