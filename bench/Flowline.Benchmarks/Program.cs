using BenchmarkDotNet.Running;

// dotnet run -c Release --project bench/Flowline.Benchmarks -- --filter '*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
