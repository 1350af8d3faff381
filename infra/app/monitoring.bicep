@description('Log Analytics workspace name.')
param logAnalyticsName string
@description('Application Insights name.')
param appInsightsName string
@description('Region.')
param location string
@description('Resource tags.')
param tags object

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Entra-only ingestion: the app publishes with its managed identity (Monitoring Metrics Publisher).
    DisableLocalAuth: true
  }
}

output appInsightsName string = appInsights.name
// The connection string holds no secret when local auth is disabled (it identifies the resource).
output connectionString string = appInsights.properties.ConnectionString
