using System.CommandLine;
using Flowline.Cli.Commands;

// The flowline command. Each verb lives in Commands/; exit codes are documented in docs/cli.md.
var root = new RootCommand("Flowline: real-time dataflow pipelines over shared memory.");
root.Subcommands.Add(DocumentCommands.Validate());
root.Subcommands.Add(DocumentCommands.Describe());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(BenchmarkCommand.Create());
root.Subcommands.Add(KindCommands.Kinds());
root.Subcommands.Add(KindCommands.Sources());
root.Subcommands.Add(KindCommands.Sinks());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(BenchPeerCommand.Create());
return root.Parse(args).Invoke();
