namespace PowerRetention.Cli;

/// <summary>Writes the help of the program and of each command from their <see cref="CommandSpec"/>s.</summary>
internal static class HelpText
{
    private const int OptionColumn = 26;
    private const int LineWidth = 100;

    /// <summary>Writes the program's usage, commands and exit codes.</summary>
    public static void WriteProgramHelp(TextWriter writer, IReadOnlyList<CommandSpec> commands)
    {
        writer.WriteLine("powerret: symmetric power retention, a linear-cost form of attention, on an Orleans cluster or this machine's cores.");
        writer.WriteLine();
        writer.WriteLine("Usage: powerret <command> [options]");
        writer.WriteLine();
        writer.WriteLine("Commands:");
        foreach (CommandSpec command in commands)
        {
            writer.WriteLine($"  {command.Name,-8}{command.Summary}");
        }

        writer.WriteLine();
        writer.WriteLine("Run 'powerret <command> --help' for the options of a command.");
        WriteExitCodes(writer);
    }

    /// <summary>Writes one command's usage, description and options.</summary>
    public static void WriteCommandHelp(TextWriter writer, CommandSpec command)
    {
        for (int i = 0; i < command.Usage.Count; i++)
        {
            writer.WriteLine((i == 0 ? "Usage: " : "       ") + command.Usage[i]);
        }

        writer.WriteLine();
        foreach (string line in Wrap(command.Description, LineWidth))
        {
            writer.WriteLine(line);
        }

        writer.WriteLine();
        writer.WriteLine("Options:");
        foreach (OptionSpec option in command.AllOptions)
        {
            string head = option.IsFlag ? $"  {option.Name}" : $"  {option.Name} {option.ValueName}";
            List<string> lines = Wrap(option.Description, LineWidth - OptionColumn);
            if (head.Length >= OptionColumn)
            {
                writer.WriteLine(head);
                head = string.Empty;
            }

            for (int i = 0; i < lines.Count; i++)
            {
                writer.WriteLine((i == 0 ? head : string.Empty).PadRight(OptionColumn) + lines[i]);
            }
        }

        WriteExitCodes(writer);
    }

    private static void WriteExitCodes(TextWriter writer)
    {
        writer.WriteLine();
        writer.WriteLine("Exit codes: 0 done, 1 failed or cancelled, 2 bad usage or bad input.");
    }

    private static List<string> Wrap(string text, int width)
    {
        var lines = new List<string>();
        var line = new System.Text.StringBuilder();
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                lines.Add(line.ToString());
                line.Clear();
            }

            if (line.Length > 0)
            {
                line.Append(' ');
            }

            line.Append(word);
        }

        if (line.Length > 0)
        {
            lines.Add(line.ToString());
        }

        return lines;
    }
}
