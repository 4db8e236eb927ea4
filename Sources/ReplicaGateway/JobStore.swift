import Foundation
import ReplicaCore
import ReplicaProtocol

/// Where a job stands. `queued` until its first task starts; `completed`, `failed` and `cancelled` are final.
enum JobState: String, Sendable {
    case queued, processing, completed, failed, cancelled

    var isActive: Bool { self == .queued || self == .processing }
}

/// Where a task stands in the database. A task handed to a worker stays `pending` there (it is running only in
/// memory), so a gateway that dies mid-task finds it pending on restart and runs it again.
enum TaskState: String, Sendable {
    case pending, done, skipped
}

/// One computation of a project, as stored.
struct JobRecord: Equatable {
    var id: String
    var projectID: String
    var options: ComputeOptions
    /// The last stage planned (`--stop-after`); nil means every stage.
    var lastStage: PipelineStage?
    var state: JobState
    /// The highest progress reported so far, 0...1.
    var progress: Double
    var errorMessage: String
    var createdAt: Double
}

/// One task of a job's graph, as stored.
struct TaskRecord: Equatable {
    /// The row id; with the job's id it makes the wire's task id.
    var id: Int64
    var jobID: String
    var stage: PipelineStage
    var kind: TaskKind
    /// The photo a per-image task is about.
    var image: String?
    var inputs: [String: JSONValue]
    var state: TaskState
    /// Attempts that ended without a result (a worker's failure, crash or hang); a stopped attempt is not one.
    var attempts: Int
    /// Tasks whose outputs this one reads.
    var dependencies: [Int64]
    /// `result.data` of the attempt that finished it.
    var result: [String: JSONValue]?
}

/// A task as the planner makes it, before it has a row: dependencies are indices into the planned list.
struct PlannedTask: Equatable {
    var stage: PipelineStage
    var kind: TaskKind
    var image: String?
    var inputs: [String: JSONValue]
    var dependencies: [Int] = []
}

/// Jobs, their tasks and warnings in SQLite; every method is a few indexed statements run on the loop thread.
final class JobStore {
    let database: Database
    private let clock: WallClock

    init(database: Database, clock: WallClock = SystemClock()) {
        self.database = database
        self.clock = clock
    }

    /// Stores a new queued job and its graph in one transaction; the tasks come back with their row ids.
    func insertJob(_ job: JobRecord, tasks planned: [PlannedTask]) throws -> [TaskRecord] {
        try database.transaction {
            try database.run("""
                INSERT INTO jobs (id, project_id, options, detail, last_stage, state, progress, created_at)
                VALUES (?, ?, ?, ?, ?, ?, 0, ?)
                """, [.text(job.id), .text(job.projectID),
                      .text(String(decoding: job.options.jsonBytes, as: UTF8.self)),
                      .text(job.options.detail.rawValue), job.lastStage.map { .text($0.rawValue) } ?? .null,
                      .text(job.state.rawValue), .real(job.createdAt)])
            var tasks: [TaskRecord] = []
            for plan in planned {
                try database.run("""
                    INSERT INTO tasks (job_id, stage, kind, image, inputs, state) VALUES (?, ?, ?, ?, ?, 'pending')
                    """, [.text(job.id), .text(plan.stage.rawValue), .text(plan.kind.rawValue),
                          plan.image.map { .text($0) } ?? .null, .text(try Self.encode(plan.inputs))])
                let id = database.lastInsertRowID
                let dependencies = plan.dependencies.map { tasks[$0].id }
                for dependency in dependencies {
                    try database.run("INSERT INTO task_dependencies (task_id, depends_on) VALUES (?, ?)",
                                     [.integer(id), .integer(dependency)])
                }
                tasks.append(TaskRecord(id: id, jobID: job.id, stage: plan.stage, kind: plan.kind,
                                        image: plan.image, inputs: plan.inputs, state: .pending, attempts: 0,
                                        dependencies: dependencies, result: nil))
            }
            return tasks
        }
    }

    /// Queued and processing jobs, oldest first.
    func activeJobs() throws -> [JobRecord] {
        try jobs(where: "state IN ('queued', 'processing') ORDER BY created_at, id", [])
    }

    /// The project's queued or processing job, if any.
    func activeJob(projectID: String) throws -> JobRecord? {
        try jobs(where: "project_id = ? AND state IN ('queued', 'processing')", [.text(projectID)]).first
    }

    func job(id: String) throws -> JobRecord? {
        try jobs(where: "id = ?", [.text(id)]).first
    }

    /// The project's jobs, newest first.
    func jobs(projectID: String) throws -> [JobRecord] {
        try jobs(where: "project_id = ? ORDER BY created_at DESC, id", [.text(projectID)])
    }

    /// The job's tasks in planning order, with their dependencies.
    func tasks(jobID: String) throws -> [TaskRecord] {
        var dependencies: [Int64: [Int64]] = [:]
        try database.forEachRow("""
            SELECT d.task_id, d.depends_on FROM task_dependencies d JOIN tasks t ON t.id = d.task_id
            WHERE t.job_id = ? ORDER BY d.task_id, d.depends_on
            """, [.text(jobID)]) { row in dependencies[row.int64(at: 0), default: []].append(row.int64(at: 1)) }
        var tasks: [TaskRecord] = []
        try database.forEachRow("""
            SELECT id, stage, kind, image, inputs, state, attempts, result FROM tasks WHERE job_id = ? ORDER BY id
            """, [.text(jobID)]) { row in
            let id = row.int64(at: 0)
            guard let stage = PipelineStage(rawValue: row.string(at: 1) ?? ""),
                  let state = TaskState(rawValue: row.string(at: 5) ?? "") else {
                throw DatabaseError(code: 0, message: "task \(id) has an unknown stage or state",
                                    operation: "read tasks of job \(jobID)")
            }
            tasks.append(TaskRecord(id: id, jobID: jobID, stage: stage,
                                    kind: TaskKind(rawValue: row.string(at: 2) ?? ""),
                                    image: row.string(at: 3), inputs: try Self.decode(row.string(at: 4)) ?? [:],
                                    state: state, attempts: Int(row.int64(at: 6)),
                                    dependencies: dependencies[id] ?? [], result: try Self.decode(row.string(at: 7))))
        }
        return tasks
    }

    // MARK: Changes

    func finishTask(id: Int64, state: TaskState, attempts: Int, result: [String: JSONValue]?, message: String) throws {
        try database.run("UPDATE tasks SET state = ?, attempts = ?, result = ?, message = ? WHERE id = ?",
                         [.text(state.rawValue), .integer(Int64(attempts)),
                          try result.map { .text(try Self.encode($0)) } ?? .null, .text(message), .integer(id)])
    }

    /// A failed attempt that will be tried again.
    func countAttempt(taskID: Int64, attempts: Int, message: String) throws {
        try database.run("UPDATE tasks SET attempts = ?, message = ? WHERE id = ?",
                         [.integer(Int64(attempts)), .text(message), .integer(taskID)])
    }

    func markStarted(jobID: String) throws {
        try database.run("UPDATE jobs SET state = 'processing', started_at = ? WHERE id = ? AND state = 'queued'",
                         [.real(clock.now), .text(jobID)])
    }

    func recordProgress(jobID: String, progress: Double) throws {
        try database.run("UPDATE jobs SET progress = max(progress, ?) WHERE id = ?", [.real(progress), .text(jobID)])
    }

    /// Ends a job: completed, failed (with the message for a person) or cancelled.
    func finishJob(id: String, state: JobState, errorMessage: String = "") throws {
        precondition(!state.isActive, "a finished job must be in a final state")
        try database.run("UPDATE jobs SET state = ?, error_message = ?, finished_at = ? WHERE id = ?",
                         [.text(state.rawValue), .text(errorMessage), .real(clock.now), .text(id)])
    }

    func addWarning(jobID: String, image: String?, message: String) throws {
        try database.run("INSERT INTO job_warnings (job_id, at, image, message) VALUES (?, ?, ?, ?)",
                         [.text(jobID), .real(clock.now), image.map { .text($0) } ?? .null, .text(message)])
    }

    /// The job's warnings in the order they came.
    func warnings(jobID: String) throws -> [(image: String?, message: String)] {
        var warnings: [(image: String?, message: String)] = []
        try database.forEachRow("SELECT image, message FROM job_warnings WHERE job_id = ? ORDER BY rowid",
                                [.text(jobID)]) { warnings.append(($0.string(at: 0), $0.string(at: 1) ?? "")) }
        return warnings
    }

    // MARK: Rows and JSON

    private func jobs(where clause: String, _ values: [DatabaseValue]) throws -> [JobRecord] {
        var jobs: [JobRecord] = []
        try database.forEachRow("""
            SELECT id, project_id, options, last_stage, state, progress, error_message, created_at FROM jobs
            WHERE \(clause)
            """, values) { row in
            let id = row.string(at: 0) ?? ""
            guard let state = JobState(rawValue: row.string(at: 4) ?? "") else {
                throw DatabaseError(code: 0, message: "job \(id) has an unknown state", operation: "read jobs")
            }
            let options: ComputeOptions
            do {
                options = try ComputeOptions.parse(Array((row.string(at: 2) ?? "").utf8))
            } catch {
                throw DatabaseError(code: 0, message: "job \(id) has unreadable options: \(error)",
                                    operation: "read jobs")
            }
            jobs.append(JobRecord(id: id, projectID: row.string(at: 1) ?? "", options: options,
                                  lastStage: row.string(at: 3).flatMap(PipelineStage.init(rawValue:)), state: state,
                                  progress: row.double(at: 5), errorMessage: row.string(at: 6) ?? "",
                                  createdAt: row.double(at: 7)))
        }
        return jobs
    }

    private static func encode(_ object: [String: JSONValue]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(object), as: UTF8.self)
    }

    private static func decode(_ text: String?) throws -> [String: JSONValue]? {
        guard let text else { return nil }
        return try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8))
    }
}
