import Foundation
import KeijiCore

/// The names a Swift task may not take. A Swift task is a target of the one workspace package, its module named
/// after it ('-' read as '_'), built into one shared build folder. A name that is a module of the Swift toolchain
/// failed (`Swift`: "module name is reserved"; `Glibc`: "circular dependency"), or built and then shadowed the
/// toolchain's module in every later task's build, even once deleted (`Foundation`: "cannot find 'Date' in scope"
/// in all of them); two tasks whose modules are one (`a-b` and `a_b`) both failed ("multiple producers").
enum SwiftTaskNames {
    /// The toolchain's modules (Swift 6.3's on Linux: `usr/lib/swift/linux` and its module maps, and Apple's usual
    /// ones), lower-cased: a file system that ignores case, and `dispatch` beside `Dispatch` (its binary crashed at
    /// start), make the case no safe difference.
    static let toolchainModules: Set<String> = [
        "swift", "swiftononesupport", "swiftshims", "swiftoverlayshims", "foundation", "foundationessentials",
        "foundationinternationalization", "foundationnetworking", "foundationxml", "corefoundation", "dispatch", "cdispatch",
        "dispatchintrospection", "blocksruntime", "glibc", "swiftglibc", "musl", "android", "darwin", "os", "objectivec", "cuuid",
        "xctest", "testing", "observation", "regexbuilder", "runtime", "synchronization", "distributed", "cxx", "cxxstdlib",
        "cxxshim", "cxxstdlibshim", "std", "packagedescription", "packageplugin", "combine", "swiftui", "winsdk", "wasilibc",
    ]

    /// The module SwiftPM makes of a task's target: '-' is not allowed in a Swift identifier.
    static func moduleName(_ name: String) -> String { name.replacingOccurrences(of: "-", with: "_") }

    /// Why `name` cannot be a Swift task, given the other task folders holding Swift sources; nil when it can.
    static func problem(with name: String, besideSwiftTasks folders: [String]) -> String? {
        if name.lowercased() == "keijitaskkit" {
            return "a Swift task cannot be named \(name): its build target would clash with the SDK's KeijiTaskKit"
        }
        if toolchainModules.contains(name.lowercased()) {
            return "a Swift task cannot be named \(name): the Swift toolchain has a module of that name (in any case), which the task's module would clash with or hide from every task's build"
        }
        let module = moduleName(name).lowercased()
        if let other = folders.first(where: { $0 != name && moduleName($0).lowercased() == module }) {
            return "a Swift task cannot be named \(name) beside task \(other): their Swift modules would be one (names must differ in more than case and '-' or '_')"
        }
        return nil
    }

    /// The task folders with Swift sources (a `main.swift`), as `WorkspaceTemplates.taskFolders` lists them.
    static func swiftTaskFolders(_ workspace: Workspace) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: workspace.tasksDirectory)) ?? []
        return names.filter { FileSystem.exists(workspace.tasksDirectory + "/" + $0 + "/main.swift") }.sorted()
    }
}
