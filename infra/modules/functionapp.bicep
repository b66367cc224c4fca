// The Function App on a Flex Consumption plan, with the storage it runs from.
//
// Everything authenticates with the app's user-assigned managed identity: the host's storage
// (AzureWebJobsStorage__*), the deployment package container, Key Vault references and the database.
// The storage account therefore has shared-key access disabled.
//
// The app settings arrive complete from main.bicep (one object, checked by test/infra.test.ts);
// this module applies them over the site's current ones, so a redeploy keeps a setting added by hand
// (as the AVM site module does) while every setting the template names gets the template's value.

@description('Function app name (also the default host name prefix).')
param name string

@description('Flex Consumption plan name.')
param planName string

param location string
param tags object

@description('Storage account for the host (AzureWebJobsStorage) and the deployment package. 3-24 lowercase letters and digits.')
@minLength(3)
@maxLength(24)
param storageAccountName string

@description('Blob container that holds the deployment package that `func azure functionapp publish` uploads.')
param deploymentContainerName string = 'app-package'

@description('Resource id of the user-assigned managed identity the app runs as.')
param identityId string

@description('Principal (object) id of that identity, for role assignments.')
param identityPrincipalId string

@minValue(1)
@maxValue(1000)
param maximumInstanceCount int

@description('Always-ready instances of the http group (0: none).')
@minValue(0)
param httpAlwaysReadyInstances int

@allowed([512, 2048, 4096])
param instanceMemoryMB int

@minValue(1)
@maxValue(1000)
param httpPerInstanceConcurrency int

@description('Every app setting of the site, names to string values (built in main.bicep).')
param appSettings object

@description('Keep settings the site has that appSettings does not name (added by hand); the template wins for the names it sets.')
param retainCurrentAppSettings bool

// Built-in role definition ids.
var storageRoleIds = [
  'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner: host leases/secrets and the deployment package
  '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // Storage Table Data Contributor: host diagnostic events
  // Storage Queue Data Contributor (974c5e8b-45b9-4653-ba55-5f855dd0fb88) is needed only by queue or
  // blob triggers; this app has HTTP triggers only, so it is not granted.
]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity-based access only (Flex supports it for both host and deployment storage)
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource storageRoleAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for roleId in storageRoleIds: {
    name: guid(storage.id, identityPrincipalId, roleId)
    scope: storage
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
      principalId: identityPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true // Linux
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references (@Microsoft.KeyVault(...) app settings) resolve with this identity.
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // No platform CORS: the app answers CORS itself from CORS_ALLOWED_ORIGINS (credentials and
      // cookies need exact origins, which the platform's CORS would otherwise intercept).
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        // Per scale group: the HTTP functions share it; each timer is a group of its own (main.bicep
        // counts both in the connection budget).
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: httpAlwaysReadyInstances > 0 ? [{ name: 'http', instanceCount: httpAlwaysReadyInstances }] : []
        instanceMemoryMB: instanceMemoryMB
        triggers: {
          http: {
            perInstanceConcurrency: httpPerInstanceConcurrency
          }
        }
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
  dependsOn: [
    // The host reads its storage with the identity from its first start.
    storageRoleAssignments
    deploymentContainer
  ]
}

// On the first deployment the site has only the platform's defaults; afterwards, its current settings.
var currentAppSettings = retainCurrentAppSettings ? list('${site.id}/config/appsettings', '2024-04-01').properties : {}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(currentAppSettings, appSettings)
}

// No FTP, and no basic (user name/password) publishing credentials: `func azure functionapp publish`
// deploys to Flex Consumption with the caller's Microsoft Entra ID token.
resource ftpCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmCredentials 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
