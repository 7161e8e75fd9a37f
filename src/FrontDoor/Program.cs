using System.Text.Json;
using System.Text.Json.Serialization;
using PowerRetention.FrontDoor;
using PowerRetention.FrontDoor.Cluster;
using PowerRetention.FrontDoor.Jobs;
using PowerRetention.ServiceDefaults;

WebApplicationBuilder builder = WebApplication.CreateBuilder(args);
builder.AddServiceDefaults();
builder.AddRetentionCluster();

// Loopback only unless ASPNETCORE_URLS, --urls or the app host chooses the address.
if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]) && string.IsNullOrEmpty(builder.Configuration["HTTP_PORTS"]))
{
    builder.WebHost.UseUrls("http://127.0.0.1:5080");
}

builder.Services.AddOptions<FrontDoorOptions>()
    .Bind(builder.Configuration.GetSection(FrontDoorOptions.SectionName))
    .Validate(options =>
    {
        options.Validate();
        return true;
    })
    .ValidateOnStart();
builder.Services.AddSingleton(TimeProvider.System);
builder.Services.AddSingleton<JobRegistry>();
builder.Services.AddHostedService(services => services.GetRequiredService<JobRegistry>());
builder.Services.AddProblemDetails();
builder.Services.ConfigureHttpJsonOptions(json =>
{
    json.SerializerOptions.PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower;
    json.SerializerOptions.Converters.Add(new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower));
});

WebApplication app = builder.Build();
app.UseExceptionHandler();
app.UseStatusCodePages();
app.MapDefaultEndpoints();
app.MapJobEndpoints();
app.Run();
