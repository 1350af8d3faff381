// The function app on Flex Consumption (Node 20), running as the user-assigned identity.
// App settings match src/config.ts exactly (test/infra checks both ways).
@description('Function app name.')
param name string
@description('Flex Consumption plan name.')
param planName string
@description('Region.')
param location string
@description('Resource tags (include azd-service-name).')
param tags object
@description('Resource id of the user-assigned managed identity.')
param identityId string
@description('Client id of the user-assigned managed identity.')
param identityClientId string
@description('Storage account for the host, the queue and the state tables.')
param storageAccountName string
@description('Blob container holding the deployment package.')
param deploymentContainerName string
@description('Application Insights connection string (identifies the resource; local auth is off).')
param appInsightsConnectionString string
@description('Key Vault URI holding the secrets referenced below.')
param keyVaultUri string
@description('Application (client) id of the multi-tenant app registration.')
param appClientId string
@description('Public https base URL for Graph notification URLs.')
param publicBaseUrl string
@description('Scale-out limit.')
param maximumInstanceCount int

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = { name: storageAccountName }

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${identityId}': {} } }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'node', version: '20' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        // Host storage through the managed identity (identity-based connections).
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        // src/config.ts
        { name: 'UMC_ENVIRONMENT', value: 'azure' }
        { name: 'UMC_TABLE_SERVICE_URI', value: storage.properties.primaryEndpoints.table }
        { name: 'UMC_QUEUE_SERVICE_URI', value: storage.properties.primaryEndpoints.queue }
        { name: 'UMC_SYNC_QUEUE', value: 'sync-mailbox' }
        { name: 'UMC_CLIENT_ID', value: appClientId }
        { name: 'UMC_MANAGED_IDENTITY_CLIENT_ID', value: identityClientId }
        { name: 'UMC_PUBLIC_BASE_URL', value: publicBaseUrl }
        { name: 'UMC_KEY_VAULT_URI', value: keyVaultUri }
        { name: 'UMC_WEBHOOK_SECRET', value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/umc-webhook-secret/)' }
        { name: 'UMC_STORE_NOTIFY_SECRET', value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/umc-store-notify-secret/)' }
        // The admin API takes Entra tokens of this tenant with the Umconnect.Admin app role (src/admin/adminAuth.ts).
        { name: 'UMC_ADMIN_TENANT_ID', value: tenant().tenantId }
        { name: 'UMC_LOG_LEVEL', value: 'info' }
      ]
    }
  }
}

output name string = app.name
output uri string = 'https://${app.properties.defaultHostName}'
