import Foundation
import ReplicaGateway

/// `replica-link reconstruct`: one local run, its exit status the process's.
func reconstruct(_ options: ReconstructOptions) -> Never {
    exit(LocalReconstruction(options: options).run())
}
