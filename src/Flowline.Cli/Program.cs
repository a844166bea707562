using System.CommandLine;
using Flowline.Cli.Commands;

// The flowline command. Each verb lives in Commands/; exit codes are documented in docs/cli.md.
// Tables written to a file or a pipe are not cut to 80 columns.
if (Console.IsOutputRedirected)
{
    Spectre.Console.AnsiConsole.Profile.Width = 200;
}

var root = new RootCommand("Flowline: real-time dataflow pipelines over shared memory.");
root.Subcommands.Add(DocumentCommands.Validate());
root.Subcommands.Add(DocumentCommands.Describe());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(BenchmarkCommand.Create());
root.Subcommands.Add(ServeCommand.Create());
foreach (var verb in RemoteCommands.Create())
{
    root.Subcommands.Add(verb);
}

foreach (var verb in ObservabilityCommands.Create())
{
    root.Subcommands.Add(verb); // issue 12: processes, request, settings, topology
}

root.Subcommands.Add(ServersCommand.Create());
root.Subcommands.Add(CoordinatorCommand.Create());
root.Subcommands.Add(AgentCommand.Create());
foreach (var verb in CoordinatorVerbs.Create()) { root.Subcommands.Add(verb); }
root.Subcommands.Add(BridgeCommand.Create());
root.Subcommands.Add(GcCommand.Create());
root.Subcommands.Add(KindCommands.Kinds());
root.Subcommands.Add(KindCommands.Sources());
root.Subcommands.Add(KindCommands.Sinks());
root.Subcommands.Add(BenchCommand.Create());
root.Subcommands.Add(BenchPeerCommand.Create());
return root.Parse(args).Invoke();
