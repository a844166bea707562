// A Flowline worker process: reads its manifest (JSON) on standard input, runs one worker of the
// pipeline it describes, and exits when told to stop, when it fails, or when its manager dies.
// The arguments (the namespace and the node's name) are there for `ps` only.
return Flowline.Runtime.WorkerProcess.Run(Console.In);
